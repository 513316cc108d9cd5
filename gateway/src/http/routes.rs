//! What the HTTP server answers, as a pure function of the request line and the state it reads:
//! `GET /metrics` (Prometheus text), `GET /health` (503 while the CDR spool cannot write) and
//! the API's `GET /voice-connectors/{id}/termination/health` (the last OPTIONS ping). The
//! admin API will be more routes here.

use std::sync::{Arc, Mutex};

use connector::policy::HealthBook;
use metrics::Registry;

use crate::driver::clock::Clock;

/// What the routes read.
#[derive(Clone)]
pub struct State {
    pub registry: Arc<Mutex<Registry>>,
    pub health: HealthBook,
    pub clock: Clock,
}

/// A response: status, content type, body.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

fn answer(status: u16, content_type: &'static str, body: impl Into<String>) -> Answer {
    Answer { status, content_type, body: body.into() }
}

/// The answer to `method path` (`path` without its query).
pub fn route(method: &str, path: &str, state: &State) -> Answer {
    if method != "GET" {
        return answer(405, "text/plain", "method not allowed\n");
    }
    if path == "/metrics" {
        let text = state.registry.lock().unwrap_or_else(|e| e.into_inner()).render();
        return answer(200, "text/plain; version=0.0.4; charset=utf-8", text);
    }
    if path == "/health" {
        let r = state.registry.lock().unwrap_or_else(|e| e.into_inner());
        return if r.get(metrics::names::CDR_SPOOL_FAILING, &metrics::Labels::default()) > 0.0 {
            answer(
                503,
                "text/plain",
                "cdr spool failing: records held in memory (disk full or read-only)\n",
            )
        } else {
            answer(200, "text/plain", "ok\n")
        };
    }
    if let Some(id) =
        path.strip_prefix("/voice-connectors/").and_then(|p| p.strip_suffix("/termination/health"))
    {
        let book = state.health.lock().unwrap_or_else(|e| e.into_inner());
        return match book.get(id) {
            Some(h) => answer(200, "application/json", h.to_json(state.clock.wall_of(h.at))),
            None => answer(
                404,
                "application/json",
                serde_json::json!({
                    "Code": "NotFound",
                    "Message": format!("no OPTIONS ping recorded for voice connector {id}"),
                })
                .to_string(),
            ),
        };
    }
    answer(404, "text/plain", "not found\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            registry: Arc::new(Mutex::new(Registry::new())),
            health: HealthBook::default(),
            clock: Clock::start(),
        }
    }

    #[test]
    fn each_path_has_its_answer() {
        let s = state();
        let m = route("GET", "/metrics", &s);
        assert_eq!((m.status, m.content_type), (200, "text/plain; version=0.0.4; charset=utf-8"));
        assert!(m.body.contains("voicegw_"), "{}", m.body);
        assert_eq!(route("GET", "/health", &s), answer(200, "text/plain", "ok\n"));
        s.registry.lock().unwrap().set(
            metrics::names::CDR_SPOOL_FAILING,
            &metrics::Labels::default(),
            1.0,
        );
        assert_eq!(route("GET", "/health", &s).status, 503);
        let h = route("GET", "/voice-connectors/abc/termination/health", &s);
        assert_eq!(h.status, 404);
        assert!(h.body.contains("\"Code\":\"NotFound\""), "{}", h.body);
        assert_eq!(route("GET", "/nothing", &s).status, 404);
        assert_eq!(route("POST", "/metrics", &s).status, 405);
    }
}
