//! JSON documents named by a voice connector's `Documents`: what `aws chime-sdk-voice
//! get-voice-connector-termination` (origination, streaming-configuration, logging-configuration,
//! emergency-calling-configuration, get-voice-connector) prints, or the body of the matching
//! `put-…` call (`{"Credentials": […]}`), used as is. A sub-resource set both inline and in a
//! document, or in two documents, is an error: one place says what applies.

use std::path::Path;

use super::objects::Document;
use super::{Config, ConfigError};

/// Reads every voice connector's documents into it.
pub(super) fn merge(config: &mut Config, base: &Path) -> Result<(), ConfigError> {
    for vc in &mut config.voice_connectors {
        for rel in vc.documents.clone() {
            let path = base.join(&rel);
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path)
                .map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
            let doc: Document = serde_json::from_str(&text).map_err(|e| ConfigError::Document {
                path: shown.clone(),
                message: format!("not a chime-sdk-voice document: {e}"),
            })?;
            let dup = |what: &str| ConfigError::Document {
                path: shown.clone(),
                message: format!("voice connector {}: {what} is set more than once", vc.id),
            };
            let mut any = false;
            if let Some(d) = doc.voice_connector {
                any = true;
                if !d.id.eq_ignore_ascii_case(&vc.id) {
                    return Err(ConfigError::Document {
                        path: shown,
                        message: format!(
                            "describes voice connector {}, but is listed under {}",
                            d.id, vc.id
                        ),
                    });
                }
                if let Some(n) = d.name {
                    vc.name = n;
                }
                if let Some(r) = d.aws_region {
                    vc.aws_region = r;
                }
                if let Some(e) = d.require_encryption {
                    vc.require_encryption = e;
                }
            }
            if let Some(t) = doc.termination {
                any = true;
                if vc.termination.replace(t).is_some() {
                    return Err(dup("Termination"));
                }
            }
            if let Some(c) = doc.credentials {
                any = true;
                if !vc.credentials.is_empty() {
                    return Err(dup("Credentials"));
                }
                vc.credentials = c;
            }
            if let Some(o) = doc.origination {
                any = true;
                if vc.origination.replace(o).is_some() {
                    return Err(dup("Origination"));
                }
            }
            if let Some(l) = doc.logging {
                any = true;
                vc.logging = l;
            }
            if let Some(s) = doc.streaming {
                any = true;
                if vc.streaming.replace(s).is_some() {
                    return Err(dup("StreamingConfiguration"));
                }
            }
            if let Some(e) = doc.emergency {
                any = true;
                if vc.emergency.replace(e).is_some() {
                    return Err(dup("EmergencyCallingConfiguration"));
                }
            }
            if !any {
                return Err(ConfigError::Document {
                    path: shown,
                    message: "an empty document: expected a key such as Termination or Origination"
                        .into(),
                });
            }
        }
    }
    Ok(())
}
