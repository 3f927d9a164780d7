//! What the sweep wrote about its run (`meta.json`): the machine, the matrix and what
//! happened to each point. Every field may be missing or null in older folders, so every
//! field is optional and the report says "unknown" rather than guessing.

use serde::Deserialize;
use serde_json::Value;

/// `meta.json`, as far as it is present.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Meta {
    pub schema_version: Option<u32>,
    pub copyperf_version: Option<String>,
    pub git_revision: Option<String>,
    pub command_line: Option<String>,
    pub host: Option<String>,
    pub kernel: Option<String>,
    pub cpu_model: Option<String>,
    pub cores: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub optmem_max: Option<u64>,
    /// Absent: unknown; `null`: unlimited.
    #[serde(deserialize_with = "present")]
    pub memlock_limit_bytes: Option<Option<u64>>,
    pub uring_setup_flags: Option<String>,
    /// `netns` or `loopback`.
    pub network: Option<String>,
    pub network_detail: Option<String>,
    pub counter_scope: Option<String>,
    pub matrix: Option<Matrix>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub points_total: Option<u64>,
    pub points_done: Option<u64>,
    /// Absent in older folders: unknown, not "none".
    pub skipped: Option<Vec<Skipped>>,
    pub failed: Option<Vec<Failed>>,
    pub interrupted: Option<bool>,
}

/// The matrix the sweep was asked to run.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Matrix {
    pub engines: Option<Vec<String>>,
    pub modes: Option<Vec<String>>,
    pub sizes: Option<Vec<u64>>,
    pub threads: Option<Vec<u64>>,
    pub workload: Option<String>,
    pub depth: Option<u64>,
    pub duration_s: Option<f64>,
    pub repeats: Option<u64>,
}

/// A point the sweep did not run, and why.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Skipped {
    pub engine: Option<String>,
    pub mode: Option<String>,
    /// Bytes, or a size as written on the command line.
    pub size: Option<Value>,
    pub threads: Option<u64>,
    pub reason: Option<String>,
}

/// A point that ran and failed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Failed {
    /// A description of the point: a string or an object of its parameters.
    pub point: Option<Value>,
    /// Which repeat of the point failed.
    pub repeat: Option<u64>,
    pub error: Option<String>,
}

/// Deserializes a field that is present: `null` becomes `Some(None)`; an absent field
/// stays `None` through `#[serde(default)]`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl Meta {
    /// Parses `meta.json` text.
    pub fn parse(text: &str) -> serde_json::Result<Meta> {
        // `null` for a whole list or object is as good as absent.
        let mut v: Value = serde_json::from_str(text)?;
        if let Value::Object(map) = &mut v {
            map.retain(|k, val| !val.is_null() || k == "memlock_limit_bytes");
        }
        serde_json::from_value(v)
    }

    pub fn interrupted(&self) -> bool {
        self.interrupted == Some(true)
    }
}

impl Skipped {
    /// `syscall zc 64K ×2`, with `?` for what is missing.
    pub fn point(&self) -> String {
        let size = self.size.as_ref().map_or("?".into(), value_size);
        format!(
            "{} {} {} ×{}",
            self.engine.as_deref().unwrap_or("?"),
            self.mode.as_deref().unwrap_or("?"),
            size,
            self.threads.map_or("?".into(), |t| t.to_string())
        )
    }
}

impl Failed {
    /// The point in one line: a string as is, an object as `key=value` pairs; then the
    /// repeat where known.
    pub fn point(&self) -> String {
        let point = match &self.point {
            None | Some(Value::Null) => "unknown point".into(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    let v = if k == "size" {
                        value_size(v)
                    } else {
                        value_text(v)
                    };
                    format!("{k}={v}")
                })
                .collect::<Vec<_>>()
                .join(" "),
            Some(v) => v.to_string(),
        };
        match self.repeat {
            Some(r) => format!("{point} (repeat {r})"),
            None => point,
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn value_size(v: &Value) -> String {
    match v.as_u64() {
        Some(n) => engine::config::format_size(n as usize),
        None => value_text(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_null_fields_are_unknown_but_null_memlock_is_unlimited() {
        let m = Meta::parse("{}").unwrap();
        assert_eq!(m, Meta::default());
        assert_eq!(m.memlock_limit_bytes, None);
        let m = Meta::parse(r#"{"memlock_limit_bytes": null, "skipped": null, "cores": null}"#)
            .unwrap();
        assert_eq!(m.memlock_limit_bytes, Some(None));
        assert_eq!(m.skipped, None);
        assert_eq!(m.cores, None);
        let m = Meta::parse(r#"{"memlock_limit_bytes": 8388608, "interrupted": true}"#).unwrap();
        assert_eq!(m.memlock_limit_bytes, Some(Some(8 << 20)));
        assert!(m.interrupted());
    }

    #[test]
    fn skipped_and_failed_points_read_as_one_line() {
        let m = Meta::parse(
            r#"{"skipped": [{"engine": "syscall", "mode": "zc-fixed", "size": 65536, "threads": 2,
                             "reason": "uring only"}],
                "failed": [{"point": {"engine": "uring", "size": 1024}, "error": "refused"},
                           {"point": "uring zc 4K x1", "repeat": 2, "error": "boom"}]}"#,
        )
        .unwrap();
        let (skipped, failed) = (m.skipped.unwrap(), m.failed.unwrap());
        assert_eq!(skipped[0].point(), "syscall zc-fixed 64K ×2");
        assert_eq!(failed[0].point(), "engine=uring size=1K");
        assert_eq!(failed[1].point(), "uring zc 4K x1 (repeat 2)");
    }
}
