//! Where a provider puts an event's id and type: JSON pointers into the body,
//! headers, query parameters, constants, or the SHA-256 of the raw body.
//!
//! Sources are written as short strings in the config:
//! `body:/id`, `header:X-GitHub-Delivery`, `query:topic`, `const:order`,
//! `sha256`. A leading `?` (`?body:/status`) marks an optional part of a
//! composite id: left out when absent instead of rejecting the delivery.
//!
//! Values are [`ByteString`]s: a body field read as it stands in the body
//! (no escapes) is a slice of the request's bytes, so the id and type of an
//! event cost a reference count each, not a copy and an allocation.

use bytestring::ByteString;
use sha2::{Digest, Sha256};

/// One place a value may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Body(String),
    Header(String),
    Query(String),
    Const(String),
    BodySha256,
}

/// A source, and whether the value may be absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub source: Source,
    pub optional: bool,
}

/// A source string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a value source: use body:/pointer, header:NAME, query:NAME, const:TEXT or sha256")]
pub struct BadSource(pub String);

impl std::str::FromStr for Part {
    type Err = BadSource;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (optional, s) = match raw.strip_prefix('?') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let source = if s == "sha256" {
            Source::BodySha256
        } else if let Some(p) = s.strip_prefix("body:") {
            if !(p.is_empty() || p.starts_with('/')) {
                return Err(BadSource(raw.to_string()));
            }
            Source::Body(p.to_string())
        } else if let Some(h) = s.strip_prefix("header:") {
            Source::Header(h.to_string())
        } else if let Some(q) = s.strip_prefix("query:") {
            Source::Query(q.to_string())
        } else if let Some(c) = s.strip_prefix("const:") {
            Source::Const(c.to_string())
        } else {
            return Err(BadSource(raw.to_string()));
        };
        Ok(Part { source, optional })
    }
}

/// What extraction reads from one delivery (or one element of a batch).
pub struct Context<'a> {
    pub body: &'a [u8],
    /// A body field by JSON pointer, as text (see [`super::scan::Lookup`]).
    pub field: &'a dyn Fn(&str) -> Option<ByteString>,
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub query: &'a dyn Fn(&str) -> Option<String>,
}

/// Reads one part as text: strings as they are, numbers and booleans printed.
pub fn read(part: &Source, ctx: &Context<'_>) -> Option<ByteString> {
    match part {
        Source::Body(pointer) => (ctx.field)(pointer),
        Source::Header(name) => (ctx.header)(name).filter(|v| !v.is_empty()).map(ByteString::from),
        Source::Query(name) => (ctx.query)(name).filter(|v| !v.is_empty()).map(ByteString::from),
        Source::Const(c) => Some(ByteString::from(c.as_str())),
        Source::BodySha256 => Some(hex::encode(Sha256::digest(ctx.body)).into()),
    }
}

/// Joins the parts with `:`. A missing required part gives `Err` naming it.
pub fn composite(parts: &[Part], ctx: &Context<'_>) -> Result<ByteString, String> {
    if let [one] = parts {
        return match read(&one.source, ctx) {
            Some(v) => Ok(v),
            None if one.optional => Ok(ByteString::new()),
            None => Err(describe(&one.source)),
        };
    }
    let mut out: Vec<ByteString> = Vec::with_capacity(parts.len());
    for p in parts {
        match read(&p.source, ctx) {
            Some(v) => out.push(v),
            None if p.optional => {}
            None => return Err(describe(&p.source)),
        }
    }
    Ok(out.join(":").into())
}

/// The first part that is present.
pub fn first_present(parts: &[Part], ctx: &Context<'_>) -> Result<ByteString, String> {
    parts
        .iter()
        .find_map(|p| read(&p.source, ctx))
        .ok_or_else(|| parts.first().map(|p| describe(&p.source)).unwrap_or_default())
}

fn describe(s: &Source) -> String {
    match s {
        Source::Body(p) => format!("body field {p}"),
        Source::Header(h) => format!("header {h}"),
        Source::Query(q) => format!("query parameter {q}"),
        Source::Const(_) | Source::BodySha256 => "value".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn ctx<'a>(body: &'a [u8], field: &'a dyn Fn(&str) -> Option<ByteString>) -> Context<'a> {
        Context {
            body,
            field,
            header: &|n| (n == "X-Id").then(|| "hdr".to_string()),
            query: &|_| None,
        }
    }

    fn fields(json: Value) -> impl Fn(&str) -> Option<ByteString> {
        move |p| match json.pointer(p)? {
            Value::String(s) => Some(s.as_str().into()),
            Value::Number(n) => Some(n.to_string().into()),
            _ => None,
        }
    }

    #[test]
    fn parses_sources() {
        assert_eq!("body:/id".parse::<Part>().unwrap().source, Source::Body("/id".into()));
        assert!("?body:/s".parse::<Part>().unwrap().optional);
        assert_eq!("sha256".parse::<Part>().unwrap().source, Source::BodySha256);
        assert!("body:id".parse::<Part>().is_err());
        assert!("nope".parse::<Part>().is_err());
    }

    #[test]
    fn composite_ids_skip_optional_parts_and_name_missing_ones() {
        let field = fields(json!({"event": "payment.created", "object_id": 42}));
        let c = ctx(b"{}", &field);
        let parts: Vec<Part> = ["body:/event", "body:/object_id", "?body:/status"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(composite(&parts, &c).unwrap(), "payment.created:42");
        let need: Vec<Part> = vec!["body:/missing".parse().unwrap()];
        assert_eq!(composite(&need, &c).unwrap_err(), "body field /missing");
    }

    #[test]
    fn first_present_and_sha() {
        let field = fields(json!({}));
        let c = ctx(b"abc", &field);
        let parts: Vec<Part> = vec!["body:/type".parse().unwrap(), "header:X-Id".parse().unwrap()];
        assert_eq!(first_present(&parts, &c).unwrap(), "hdr");
        assert_eq!(
            read(&Source::BodySha256, &c).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
