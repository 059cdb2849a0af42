//! `webhooks sign` and `webhooks send`: make valid deliveries with the
//! configured secrets, for curl and for trying a receiver by hand.

use crate::cli::{SendArgs, SignArgs};
use crate::context;
use anyhow::Context;
use rand::Rng;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use webhooks_shared::time::unix_now;
use webhooks_shared::verify::{SignInput, Signed};

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

fn sign_body(
    config_args: &crate::cli::ConfigArgs,
    provider: &str,
    body: &[u8],
    id: &str,
    url: &str,
) -> anyhow::Result<Signed> {
    let config = context::load_config(config_args)?;
    let provider = context::provider(&config, provider)?;
    Ok(provider.verifier.sign(&SignInput {
        body,
        now: unix_now(),
        id,
        url,
    }))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let body = read_body(args.file.as_deref())?;
    let id = args.id.clone().unwrap_or_else(random_id);
    let url = format!("{}/webhooks/{}", args.base_url.trim_end_matches('/'), args.provider);
    let signed = sign_body(&args.config, &args.provider, &body, &id, &url)?;
    if args.curl {
        let mut cmd = format!("curl -sS -X POST {}", shell_quote(&with_query(&url, &signed)));
        cmd.push_str(" -H 'Content-Type: application/json'");
        for (k, v) in &signed.headers {
            cmd.push_str(&format!(" -H {}", shell_quote(&format!("{k}: {v}"))));
        }
        match &args.file {
            Some(f) => cmd.push_str(&format!(" --data-binary @{}", shell_quote(&f.display().to_string()))),
            None => cmd.push_str(" --data-binary @-"),
        }
        println!("{cmd}");
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
    let signed = sign_body(&args.config, &args.provider, &body, &id, &url)?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()?;
    let mut req = client
        .post(with_query(&url, &signed))
        .header("content-type", &args.content_type)
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
}
