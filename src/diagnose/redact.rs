//! What never leaves the process, in every output of `doctor` (text, `--json`,
//! `--report`): a JWT is shown as its algorithm, organizations and expiry, never
//! its signature; `Bearer` values, cookies, URL passwords and `token` /
//! `access_token` parameters are masked; with `--redact-ids` the organization id and
//! item ids too.

/// Masks secrets (and, when asked, ids) in text.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    token: Option<String>,
    ids: Vec<String>,
}

impl Redactor {
    /// `token` is the one sent; `ids` (the organization id, with `--redact-ids`)
    /// are masked too.
    pub fn new(token: Option<&str>, ids: Vec<String>) -> Redactor {
        Redactor {
            token: token.map(String::from).filter(|t| !t.is_empty()),
            ids: ids.into_iter().filter(|i| !i.is_empty()).collect(),
        }
    }

    /// `text` with every secret replaced.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Some(token) = &self.token {
            out = out.replace(token.as_str(), &token_summary(token));
        }
        out = jwts(&out);
        out = after_word(&out, "Bearer ");
        out = after_word(&out, "bearer ");
        for header in [
            "cookie: ",
            "Cookie: ",
            "set-cookie: ",
            "Set-Cookie: ",
            "Authorization: ",
            "authorization: ",
        ] {
            out = after_word(&out, header);
        }
        let words: Vec<String> = out
            .split(' ')
            .map(|w| {
                if (w.contains("://") && w.contains('@')) || w.contains("token=") {
                    crate::client::redact_text(w)
                } else {
                    w.to_string()
                }
            })
            .collect();
        out = words.join(" ");
        if !self.ids.is_empty() {
            for id in &self.ids {
                out = out.replace(id.as_str(), "‹org›");
            }
            out = pfa_ids(&out);
        }
        out
    }
}

/// `JWT(alg HS256, orgs [org-a], exp 2026-…)`: what a token may show of itself.
pub fn token_summary(token: &str) -> String {
    let Ok(decoded) = crate::claims::decode_unverified(token) else {
        return "***".into();
    };
    let alg = decoded
        .header
        .get("alg")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    let orgs = match crate::claims::read_access(&decoded.claims) {
        Ok(a) if a.all => "*".to_string(),
        Ok(a) => a
            .orgs
            .iter()
            .map(|o| o.id.as_str())
            .collect::<Vec<_>>()
            .join(","),
        Err(_) => "?".into(),
    };
    let exp = decoded
        .claims
        .get("exp")
        .and_then(|v| v.as_u64())
        .map_or("-".to_string(), |exp| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp),
            )
            .to_string()
        });
    crate::text::shown(&format!("JWT(alg {alg}, orgs [{orgs}], exp {exp})"), 200)
}

fn is_b64(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '='
}

/// Every `eyJ….….…` in `text` replaced by its summary.
fn jwts(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("eyJ") {
        out.push_str(&rest[..at]);
        let candidate = &rest[at..];
        let end = candidate
            .find(|c: char| !(is_b64(c) || c == '.'))
            .unwrap_or(candidate.len());
        let word = &candidate[..end];
        if word.matches('.').count() == 2 {
            out.push_str(&token_summary(word));
        } else {
            out.push_str(word);
        }
        rest = &candidate[end..];
    }
    out.push_str(rest);
    out
}

/// The word after each `marker` replaced by `***`.
fn after_word(text: &str, marker: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        let value = &rest[at + marker.len()..];
        let end = value
            .find(|c: char| c.is_whitespace() || c == '"' || c == ';' || c == ',')
            .unwrap_or(value.len());
        if value[..end].starts_with("***") || value[..end].starts_with("JWT(") {
            out.push_str(&value[..end]);
        } else {
            out.push_str("***");
        }
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// `pfa-…` item ids masked (`--redact-ids`).
fn pfa_ids(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("pfa-") {
        out.push_str(&rest[..at]);
        let id = &rest[at..];
        let end = id
            .find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(id.len());
        out.push_str("‹pfa›");
        rest = &id[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.c2lnbmF0dXJlLWJ5dGVz",
            b64(r#"{"alg":"HS256","typ":"JWT"}"#),
            b64(claims)
        )
    }

    #[test]
    fn tokens_keep_algorithm_organizations_and_expiry_only() {
        let token = jwt(r#"{"org":"org-a","exp":2000000000}"#);
        let r = Redactor::new(Some(&token), Vec::new());
        let text = format!(
            "sent {token} as Authorization: Bearer {token}; other {}",
            jwt(r#"{"org":"*"}"#)
        );
        let shown = r.apply(&text);
        assert!(!shown.contains("c2lnbmF0dXJl"), "{shown}");
        assert!(
            shown.contains("JWT(alg HS256, orgs [org-a], exp 2033-05-18T03:33:20Z)"),
            "{shown}"
        );
        assert!(shown.contains("orgs [*]"), "{shown}");
        let url = r.apply("at wss://user:hunter2@h/x?token=abc&since=1 and Cookie: sid=42");
        assert!(
            !url.contains("hunter2") && !url.contains("abc") && !url.contains("sid=42"),
            "{url}"
        );
        assert!(url.contains("since=1"), "{url}");
    }

    #[test]
    fn ids_are_masked_when_asked() {
        let r = Redactor::new(None, vec!["org-acme".into()]);
        assert_eq!(
            r.apply("CONNECTED for org-acme, pfa-12 done"),
            "CONNECTED for ‹org›, ‹pfa› done"
        );
        assert_eq!(
            Redactor::default().apply("org-acme pfa-1"),
            "org-acme pfa-1"
        );
    }
}
