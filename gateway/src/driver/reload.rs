//! SIGHUP: the configuration read again and, if valid, applied to new calls. Calls in progress
//! keep their legs, media and records. Listener, media and data settings need a restart; a
//! change to them is reported and ignored.

use connector::config::{Config, Validated};

use super::settings;
use super::Core;

/// Reads `path` again; `None` (with the reason logged) when there is nothing to reload or the
/// file is not valid.
pub fn load(path: Option<&std::path::Path>, running: &Validated) -> Option<Validated> {
    let Some(path) = path else {
        tracing::info!("SIGHUP: running on the embedded default configuration; nothing to reload");
        return None;
    };
    let v = match Config::load(path) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: configuration not reloaded; the running one stays");
            return None;
        }
    };
    if needs_restart(&v, running) {
        tracing::warn!(
            "SIGHUP: listener, media, data or CDR store settings changed; they apply after a restart"
        );
    }
    tracing::info!(
        path = %path.display(),
        voice_connectors = v.config.voice_connectors.len(),
        "SIGHUP: configuration reloaded; new calls use it"
    );
    Some(v)
}

/// Whether `new` changes what only a restart applies.
fn needs_restart(new: &Validated, running: &Validated) -> bool {
    new.listen_udp != running.listen_udp
        || new.listen_tcp != running.listen_tcp
        || new.listen_tls != running.listen_tls
        || new.metrics_listen != running.metrics_listen
        || new.media_ports != running.media_ports
        || new.config.media.address != running.config.media.address
        || new.config.data.dir != running.config.data.dir
        || new.config.cdr_spool_dir() != running.config.cdr_spool_dir()
        || new.config.cdr_dir() != running.config.cdr_dir()
        || new.cdr_bucket != running.cdr_bucket
        || new.config.streaming_dir() != running.config.streaming_dir()
        || new.config.streaming.sink != running.config.streaming.sink
}

/// Routes new calls by `v`, with its encryption and media-source-learning settings.
pub fn apply_to_core(core: &mut Core, v: &Validated) {
    let router = core.router_mut().reloaded(v, rand::random());
    *core.router_mut() = router;
    core.anchor_mut().set_required_encryption(settings::encrypted_voice_connectors(&v.config));
    core.anchor_mut().set_media_source_learning(settings::learning_voice_connectors(&v.config));
    core.anchor_mut().set_streaming(v.streaming.clone());
    let recording = &mut core.app_mut().second;
    let admission = recording.policy_mut().reloaded(v);
    *recording.policy_mut() = admission;
    recording.anchor_mut().set_streaming(v.streaming.clone());
    recording.anchor_mut().set_required_encryption(settings::encrypted_voice_connectors(&v.config));
}
