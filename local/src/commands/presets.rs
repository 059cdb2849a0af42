//! `webhooks presets`: what `preset = "NAME"` gives, so a provider can be
//! configured without reading the sender's documentation first.

use crate::cli::{PresetsArgs, PresetsCommand};
use std::process::ExitCode;
use webhooks_core::provider::presets::{self, Preset};

/// Lists every preset with its scheme, or prints one expanded.
pub fn run(args: PresetsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        None => print!("{}", list()),
        Some(PresetsCommand::Show { name }) => print!("{}", show(&name)?),
    }
    Ok(ExitCode::SUCCESS)
}

fn list() -> String {
    let all = presets::all();
    let width = all.keys().map(String::len).max().unwrap_or(0);
    let scheme_width = all.values().map(|p| p.scheme().len()).max().unwrap_or(0);
    all.values()
        .map(|p| format!("{:width$}  {:scheme_width$}  {}\n", p.name, p.scheme(), p.summary))
        .collect()
}

/// The expanded table as it would sit in a config file, the references the
/// user must add shown as placeholders naming a variable.
fn show(name: &str) -> anyhow::Result<String> {
    let Some(preset) = presets::all().get(name) else {
        let known = presets::all().keys().cloned().collect::<Vec<_>>().join(", ");
        anyhow::bail!("unknown preset \"{name}\" (known: {known})");
    };
    let mut user = toml::Table::new();
    user.insert("preset".into(), name.into());
    for need in &preset.needs {
        if presets::REFERENCE_KEYS.contains(&need.as_str()) {
            let var = format!("{}_{}", name.to_uppercase(), placeholder(need));
            user.insert(need.clone(), toml::Value::Array(vec![format!("env:{var}").into()]));
        } else {
            // Not a reference (Openpay's user name): a value the user picks.
            let mut verifier = toml::Table::new();
            verifier.insert(need.clone(), format!("CHANGE_ME_{}", need.to_uppercase()).into());
            user.insert("verifier".into(), toml::Value::Table(verifier));
        }
    }
    let expanded = presets::expand(name, &user).map_err(anyhow::Error::msg)?;
    let mut root = toml::Table::new();
    let mut providers = toml::Table::new();
    providers.insert(name.into(), toml::Value::Table(expanded));
    root.insert("providers".into(), toml::Value::Table(providers));
    Ok(format!(
        "# {summary}\n# {docs}\n# Written as: preset = \"{name}\" plus {needs}.\n{body}",
        summary = preset.summary,
        docs = preset.docs,
        needs = needs(preset),
        body = toml::to_string(&root)?
    ))
}

fn placeholder(need: &str) -> &'static str {
    match need {
        "public_keys" => "PUBLIC_KEY",
        "verify_tokens" => "VERIFY_TOKEN",
        "passwords" => "PASSWORD",
        "logins" => "LOGIN",
        _ => "SECRET",
    }
}

fn needs(preset: &Preset) -> String {
    preset
        .needs
        .iter()
        .map(|n| {
            if presets::REFERENCE_KEYS.contains(&n.as_str()) {
                format!("{n} = [...]")
            } else {
                format!("verifier = {{ {n} = \"...\" }}")
            }
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_every_preset_with_its_scheme() {
        let out = list();
        assert_eq!(out.lines().count(), presets::all().len());
        let discord = out.lines().find(|l| l.starts_with("discord ")).expect("discord listed");
        assert!(discord.contains("ed25519"), "{discord}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("sendgrid") && l.contains("ecdsa_p256")),
            "{out}"
        );
        assert!(
            out.lines()
                .any(|l| l.starts_with("wompi ") && l.contains("property_checksum")),
            "{out}"
        );
    }

    #[test]
    fn show_prints_a_table_that_loads_as_the_preset_does() {
        let out = show("github").expect("known");
        assert!(
            out.contains("[providers.github]") && out.contains("X-GitHub-Delivery"),
            "{out}"
        );
        assert!(out.contains("env:GITHUB_SECRET"), "{out}");
        let config = webhooks_core::config::AppConfig::from_overlay(Some(("show", &out))).expect("loads");
        let by_preset = webhooks_core::config::AppConfig::from_overlay(Some((
            "preset",
            "[providers.github]\npreset = \"github\"\nsecrets = [\"env:GITHUB_SECRET\"]",
        )))
        .expect("loads");
        let a = &config.enabled_providers()["github"];
        let b = &by_preset.enabled_providers()["github"];
        assert_eq!(
            (&a.verifier, &a.event_id, &a.event_type),
            (&b.verifier, &b.event_id, &b.event_type)
        );
        assert!(show("sendgrid")
            .expect("known")
            .contains("public_keys = [\"env:SENDGRID_PUBLIC_KEY\"]"));
        let openpay = show("openpay").expect("known");
        assert!(
            openpay.contains("CHANGE_ME_USERNAME")
                && openpay.contains("env:OPENPAY_PASSWORD")
                && openpay.contains(r#"verifier = { username = "..." }"#),
            "{openpay}"
        );
        let err = show("nope").expect_err("unknown");
        assert!(
            err.to_string().contains("known: ") && err.to_string().contains("stripe"),
            "{err}"
        );
    }
}
