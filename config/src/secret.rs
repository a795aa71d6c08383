//! Values that must never be shown: the admin token, OTLP header values, the password in an
//! OTLP endpoint URL. `check-config`, the log, `Debug` and error messages show
//! [`REDACTED`] in their place.

use std::fmt;

use serde::Serialize;

/// What is shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// A secret string: its `Debug`, `Display` and `Serialize` show [`REDACTED`]; only
/// [`Secret::expose`] gives the value, where it is used (an HTTP header, a comparison).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// A URL that may carry credentials in its user info (`http://user:password@host`): its
/// `Debug`, `Display` and `Serialize` show it through [`url_shown`]; [`SecretUrl::expose`]
/// gives it whole.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }

    /// The URL itself, credentials included, for the one place that connects to it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no URL is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", url_shown(&self.0))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&url_shown(&self.0))
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&url_shown(&self.0))
    }
}

/// A URL with the password of its user info (`http://user:password@host`) redacted; a user
/// without a password is redacted whole (it is often a token).
pub fn url_shown(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user = match rest[..at].split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_owned(),
    };
    format!("{scheme}{user}{}", &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_show_redacted_everywhere() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s}"), REDACTED);
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{:?}", Some(&s)).contains("hunter2"));
        assert_eq!(
            toml::Value::try_from(&s).unwrap(),
            toml::Value::String(REDACTED.to_owned())
        );
        assert_eq!(s.expose(), "hunter2-hunter2");
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            url_shown("http://u:p@h:1/x@y"),
            "http://u:<redacted>@h:1/x@y"
        );
        assert_eq!(url_shown("https://tok@h:1"), "https://<redacted>@h:1");
        assert_eq!(url_shown("http://h:4317"), "http://h:4317");
        assert_eq!(url_shown("http://h:4317/p?a=b@c"), "http://h:4317/p?a=b@c");
        assert_eq!(url_shown("not a url"), "not a url");
        assert_eq!(url_shown("u:p@h:1"), "u:<redacted>@h:1");
    }
}
