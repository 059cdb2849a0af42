//! `webhooks sign` and `webhooks send`: make valid deliveries with the
//! configured secrets, for curl and for trying a receiver by hand.

use crate::cli::{SendArgs, SignArgs};
use crate::context;
use anyhow::Context;
use rand::Rng;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use webhooks_core::provider::BodyFormat;
use webhooks_core::secret::{describe_reference, EnvResolver, Secret, SecretResolver};
use webhooks_core::time::unix_now;
use webhooks_core::verify::{SignInput, Signed};

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// The content type a delivery goes with, for `sign --curl` and `send`:
/// `explicit` when given (`--content-type`), else what the provider reads
/// the body as: form for `format = "form"`, and for `format = "auto"` when
/// the body is not JSON (TusFacturas and Twilio post forms); JSON otherwise.
fn content_type<'a>(explicit: Option<&'a str>, format: BodyFormat, body: &[u8]) -> &'a str {
    if let Some(c) = explicit {
        return c;
    }
    match format {
        BodyFormat::Json => JSON,
        BodyFormat::Form => FORM,
        BodyFormat::Auto if serde_json::from_slice::<serde_json::Value>(body).is_ok() => JSON,
        BodyFormat::Auto => FORM,
    }
}

fn read_body(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match file {
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display())),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read standard input")?;
            Ok(buf)
        }
    }
}

fn random_id() -> String {
    format!("msg_{:016x}", rand::thread_rng().gen::<u64>())
}

/// Appends signed query parameters to a URL.
fn with_query(url: &str, signed: &Signed) -> String {
    if signed.query.is_empty() {
        return url.to_string();
    }
    let encoded = serde_urlencoded::to_string(&signed.query).unwrap_or_default();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{encoded}")
}

/// The sender's private key that `--private-key` names: `env:NAME`,
/// resolved like every secret reference here, or `file:PATH`, a key file as
/// openssl writes it. Never the key itself: on the command line it would
/// stay in the shell's history and show in `ps`; an error describes such a
/// value without repeating it.
fn private_key(reference: &str) -> anyhow::Result<Secret> {
    if let Some(path) = reference.strip_prefix("file:") {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read the private key file {path}"))?;
        return Ok(Secret::new(bytes));
    }
    if reference.starts_with("env:") {
        return Ok(EnvResolver.resolve(reference)?);
    }
    anyhow::bail!(
        "--private-key takes env:NAME or file:PATH, not a key ({})",
        describe_reference(reference)
    )
}

/// What makes `body` a valid delivery to `name`: the headers and query,
/// and, for a scheme whose proof is inside the body (Wompi's checksum), the
/// body with it written in; and how that provider reads bodies. A
/// public-key provider is signed for only with the sender's private key
/// (`private_key`, a reference); the others with their configured secrets,
/// so a private key given for them is refused rather than silently unused.
fn sign_body(
    config_args: &crate::cli::ConfigArgs,
    name: &str,
    private_key_ref: Option<&str>,
    body: &[u8],
    id: &str,
    url: &str,
) -> anyhow::Result<(Signed, Option<Vec<u8>>, BodyFormat)> {
    let config = context::load_config(config_args)?;
    let provider = context::provider(&config, name)?;
    let format = config
        .enabled_providers()
        .get(name)
        .map(|c| c.format)
        .unwrap_or_default();
    let input = SignInput {
        body,
        now: unix_now(),
        id,
        url,
    };
    let rewritten = match provider.verifier.sign_body(&input) {
        Some(signed) => Some(signed.map_err(|e| anyhow::anyhow!("provider {name}: cannot sign this body: {e}"))?),
        None => None,
    };
    let input = SignInput {
        body: rewritten.as_deref().unwrap_or(body),
        ..input
    };
    let signed = match (provider.verifier.can_sign(), private_key_ref) {
        (true, None) => provider.verifier.sign(&input),
        (true, Some(_)) => anyhow::bail!(
            "provider {name} signs with its configured secret: --private-key is only for public-key providers"
        ),
        (false, None) => anyhow::bail!(
            "provider {name} verifies a public-key signature: give the sender's private key with --private-key env:NAME or file:PATH"
        ),
        (false, Some(reference)) => {
            // Resolved, so a reference (env: or file:), safe to name.
            let key = private_key(reference)?;
            provider
                .verifier
                .sign_with_private_key(&input, &key)
                .map_err(|e| anyhow::anyhow!("--private-key {reference}: {e}"))?
        }
    };
    Ok((signed, rewritten, format))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Where the body `curl` posts comes from.
enum Data<'a> {
    /// The file the body was read from.
    File(&'a Path),
    /// Standard input.
    Stdin,
    /// The body as signed, written into the command (it differs from the
    /// input when the proof is inside it).
    Inline(&'a [u8]),
}

/// A curl command that posts the body.
fn curl_command(url: &str, signed: &Signed, content_type: &str, data: Data<'_>) -> String {
    let mut cmd = format!("curl -sS -X POST {}", shell_quote(&with_query(url, signed)));
    cmd.push_str(&format!(
        " -H {}",
        shell_quote(&format!("Content-Type: {content_type}"))
    ));
    for (k, v) in &signed.headers {
        cmd.push_str(&format!(" -H {}", shell_quote(&format!("{k}: {v}"))));
    }
    match data {
        Data::File(f) => cmd.push_str(&format!(" --data-binary @{}", shell_quote(&f.display().to_string()))),
        Data::Stdin => cmd.push_str(" --data-binary @-"),
        Data::Inline(body) => cmd.push_str(&format!(
            " --data-binary {}",
            shell_quote(&String::from_utf8_lossy(body))
        )),
    }
    cmd
}

pub fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let body = read_body(args.file.as_deref())?;
    let id = args.id.clone().unwrap_or_else(random_id);
    let url = format!("{}/webhooks/{}", args.base_url.trim_end_matches('/'), args.provider);
    let (signed, rewritten, format) = sign_body(
        &args.config,
        &args.provider,
        args.private_key.as_deref(),
        &body,
        &id,
        &url,
    )?;
    if args.curl {
        let content_type = content_type(args.content_type.as_deref(), format, &body);
        let data = match (&rewritten, args.file.as_deref()) {
            (Some(signed_body), _) => Data::Inline(signed_body),
            (None, Some(f)) => Data::File(f),
            (None, None) => Data::Stdin,
        };
        println!("{}", curl_command(&url, &signed, content_type, data));
    } else if let Some(signed_body) = rewritten {
        // The proof is the body itself: it is what to post.
        println!("{}", String::from_utf8_lossy(&signed_body));
    } else {
        for (k, v) in &signed.headers {
            println!("{k}: {v}");
        }
        if !signed.query.is_empty() {
            println!("?{}", serde_urlencoded::to_string(&signed.query).unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let body = read_body(args.file.as_deref())?;
    let id = args.id.clone().unwrap_or_else(random_id);
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:3000/webhooks/{}", args.provider));
    let (signed, rewritten, format) = sign_body(
        &args.config,
        &args.provider,
        args.private_key.as_deref(),
        &body,
        &id,
        &url,
    )?;
    let body = rewritten.unwrap_or(body);
    let content_type = content_type(args.content_type.as_deref(), format, &body);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()?;
    let mut req = client
        .post(with_query(&url, &signed))
        .header("content-type", content_type)
        .body(body);
    for (k, v) in &signed.headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    println!("{} {}", status.as_u16(), text);
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_appended_encoded() {
        let s = Signed {
            headers: vec![],
            query: vec![("token".into(), "a b&c".into())],
        };
        assert_eq!(with_query("http://h/x", &s), "http://h/x?token=a+b%26c");
        assert_eq!(with_query("http://h/x?y=1", &s), "http://h/x?y=1&token=a+b%26c");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn content_type_follows_the_flag_else_the_providers_format() {
        let form = b"external_reference=ORD-1&estado=AUTORIZADO";
        let json = br#" {"id":"evt_1"}"#;
        assert_eq!(content_type(Some("text/plain"), BodyFormat::Form, form), "text/plain");
        assert_eq!(content_type(None, BodyFormat::Json, form), JSON);
        assert_eq!(content_type(None, BodyFormat::Form, json), FORM);
        assert_eq!(content_type(None, BodyFormat::Auto, form), FORM);
        assert_eq!(content_type(None, BodyFormat::Auto, json), JSON);
        assert_eq!(content_type(None, BodyFormat::Auto, b"[1,2]"), JSON);
    }

    #[test]
    fn curl_posts_a_form_body_as_a_form() {
        let signed = Signed {
            headers: vec![("X-Twilio-Signature".into(), "abc=".into())],
            query: vec![("bodySHA256".into(), "00".into())],
        };
        let body = b"MessageSid=SM1&MessageStatus=delivered";
        let cmd = curl_command(
            "http://h/webhooks/twilio",
            &signed,
            content_type(None, BodyFormat::Auto, body),
            Data::File(Path::new("body.txt")),
        );
        assert_eq!(
            cmd,
            "curl -sS -X POST 'http://h/webhooks/twilio?bodySHA256=00' \
             -H 'Content-Type: application/x-www-form-urlencoded' -H 'X-Twilio-Signature: abc=' \
             --data-binary @'body.txt'"
        );
        assert!(!cmd.contains(JSON));
        let json = curl_command(
            "http://h/x",
            &signed,
            content_type(None, BodyFormat::Auto, b"{}"),
            Data::Stdin,
        );
        assert!(json.contains("-H 'Content-Type: application/json'"), "{json}");
        assert!(json.ends_with("--data-binary @-"), "{json}");
        let inline = curl_command("http://h/x", &Signed::default(), JSON, Data::Inline(br#"{"a":"it's"}"#));
        assert!(inline.ends_with(r#"--data-binary '{"a":"it'\''s"}'"#), "{inline}");
    }
}
