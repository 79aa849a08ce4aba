//! Secret hygiene: PLAINTEXT environment variables whose names look like secrets.

use crate::api::{CodeBuildRunSpec, EnvironmentVariableType};

/// Words that make a variable name look like it holds a secret.
const SECRET_WORDS: &[&str] = &["TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "CREDENTIAL"];

/// The names of the PLAINTEXT variables of `spec` (type unset or PLAINTEXT) that look like
/// secrets: a word of the name (split at `_`, `-`, `.`), upper-cased, contains TOKEN,
/// PASSWORD, PASSWD, SECRET or CREDENTIAL, or is KEY, KEYS or APIKEY (so `API_KEY` counts
/// and `MONKEY_COUNT` or `KEYBOARD` do not).
pub fn secret_looking_plaintext(spec: &CodeBuildRunSpec) -> Vec<String> {
    spec.environment_variables_override
        .iter()
        .flatten()
        .filter(|v| matches!(v.type_, None | Some(EnvironmentVariableType::Plaintext)))
        .filter(|v| looks_secret(&v.name))
        .map(|v| v.name.clone())
        .collect()
}

/// The warning for the PLAINTEXT variables of `spec` that look like secrets (their values
/// are visible to anyone who can read the object, and in the build's settings); None when
/// there are none.
pub fn plaintext_warning(spec: &CodeBuildRunSpec) -> Option<String> {
    let names = secret_looking_plaintext(spec);
    if names.is_empty() {
        return None;
    }
    let one = names.len() == 1;
    Some(format!(
        "environment variable{} {} {} PLAINTEXT but look{} like a secret: use type \
         PARAMETER_STORE or SECRETS_MANAGER, so the value is not stored in this object",
        if one { "" } else { "s" },
        names.join(", "),
        if one { "is" } else { "are" },
        if one { "s" } else { "" },
    ))
}

/// Whether a variable name looks like it holds a secret.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.split(['_', '-', '.']).any(|word| {
        SECRET_WORDS.iter().any(|secret| match *secret {
            "KEY" => word == "KEY" || word == "APIKEY" || word == "KEYS",
            other => word.contains(other),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_look_secret() {
        for name in [
            "GITHUB_TOKEN",
            "NPM_TOKEN",
            "db_password",
            "PASSWD",
            "AWS_SECRET_ACCESS_KEY",
            "API_KEY",
            "apikey",
            "SIGNING-KEY",
            "ClientSecret",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "AccessTokens",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in [
            "STAGE",
            "MONKEY_COUNT",
            "KEYBOARD_LAYOUT",
            "BUILD_ID",
            "TOKENIZER",
        ] {
            // TOKENIZER contains TOKEN: a false positive is only a warning.
            assert_eq!(looks_secret(name), name == "TOKENIZER", "{name}");
        }
    }

    #[test]
    fn only_plaintext_variables() {
        let spec: CodeBuildRunSpec = serde_json::from_value(serde_json::json!({
            "projectName": "p",
            "environmentVariablesOverride": [
                {"name": "GITHUB_TOKEN", "value": "ghp_x"},
                {"name": "DB_PASSWORD", "value": "/db/pw", "type": "PARAMETER_STORE"},
                {"name": "API_KEY", "value": "k", "type": "PLAINTEXT"},
                {"name": "SECRET", "value": "arn:...", "type": "SECRETS_MANAGER"},
                {"name": "STAGE", "value": "prod"}
            ]
        }))
        .unwrap();
        assert_eq!(
            secret_looking_plaintext(&spec),
            vec!["GITHUB_TOKEN", "API_KEY"]
        );
    }
}
