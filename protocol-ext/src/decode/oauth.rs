//! OAUTHBEARER (RFC 7628) client first message: the principal is the token's `sub` claim, the
//! claim Kafka's OAUTHBEARER login names the principal by default. The token is not verified
//! (the broker does that); only its payload's `sub` is read and the rest is never copied.
//!
//! Message: `gs2-header \x01 (key=value \x01)* \x01`, where `gs2-header` is `n,`, `y,` or
//! `p=<cb>,` then an optional `a=<authzid>` and `,`; one pair is `auth=Bearer <token>`. The
//! token is a JWS compact serialisation `header.payload.signature` (the signature may be
//! empty: Kafka's unsecured tokens), the payload base64url-encoded JSON.
//!
//! Bounded: a payload over [`MAX_PAYLOAD`] encoded bytes is not decoded, a claim over
//! [`super::sasl::MAX_PRINCIPAL`] bytes is not kept. Anything malformed yields `None`.

/// Largest encoded JWT payload decoded.
pub(super) const MAX_PAYLOAD: usize = 8 << 10;

/// The `sub` claim of the bearer token in an OAUTHBEARER client first message.
pub(super) fn oauth_subject(auth: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(auth).ok()?;
    let pairs = gs2_rest(text)?.strip_prefix('\x01')?;
    // Each pair ends with `\x01`, and the message with one more.
    let pairs = pairs.strip_suffix("\x01\x01")?;
    let mut token = None;
    for pair in pairs.split('\x01') {
        if pair.is_empty() {
            return None; // no empty pair before the end
        }
        let (key, value) = pair.split_once('=')?;
        if key == "auth" {
            if token.is_some() {
                return None;
            }
            let (scheme, t) = value.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            token = Some(t);
        }
    }
    jwt_subject(token?)
}

/// What follows the gs2 header (`n,,` `y,a=x,` `p=tls-unique,,`).
fn gs2_rest(text: &str) -> Option<&str> {
    let (cbind, rest) = text.split_once(',')?;
    if !(cbind == "n" || cbind == "y" || cbind.starts_with("p=")) {
        return None;
    }
    let (authzid, rest) = rest.split_once(',')?;
    (authzid.is_empty() || authzid.starts_with("a=")).then_some(rest)
}

/// The `sub` claim of a JWS compact token, unverified.
fn jwt_subject(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.is_empty() || payload.len() > MAX_PAYLOAD {
        return None;
    }
    let json = base64url(payload.as_bytes())?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let sub = claims.as_object()?.get("sub")?.as_str()?;
    super::sasl::acceptable(sub).then(|| sub.to_owned())
}

/// Decodes base64url without padding (a trailing `=` padding is accepted too).
fn base64url(s: &[u8]) -> Option<Vec<u8>> {
    let s = match s.iter().position(|b| *b == b'=') {
        Some(i) if s[i..].iter().all(|b| *b == b'=') && s.len() - i <= 2 => &s[..i],
        Some(_) => return None,
        None => s,
    };
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any bytes, any token after a well-formed prefix, any JSON-ish payload: no panic,
        /// and a name only when the payload's `sub` is one.
        #[test]
        fn anything_is_safe(
            raw in proptest::collection::vec(any::<u8>(), 0..300),
            token in "[ -~]{0,120}",
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            sub in "[a-z0-9-]{1,12}",
        ) {
            let _ = oauth_subject(&raw);
            let _ = oauth_subject(&msg(&token));
            let t = format!("{HEADER}.{}.s", encode(&payload));
            if let Some(name) = oauth_subject(&msg(&t)) {
                let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                prop_assert_eq!(claims["sub"].as_str(), Some(name.as_str()));
            }
            let good = format!(r#"{{"sub":"{sub}","x":[1,{{"y":null}}]}}"#);
            let t = format!("{HEADER}.{}.s", encode(good.as_bytes()));
            prop_assert_eq!(oauth_subject(&msg(&t)), Some(sub));
        }
    }

    /// base64url without padding, the test's own.
    fn encode(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    /// `{"alg":"none"}` and `{"sub":"alice","scope":"x"}`, base64url.
    const HEADER: &str = "eyJhbGciOiJub25lIn0";
    const PAYLOAD: &str = "eyJzdWIiOiJhbGljZSIsInNjb3BlIjoieCJ9";

    fn msg(token: &str) -> Vec<u8> {
        format!("n,,\x01host=kafka\x01auth=Bearer {token}\x01\x01").into_bytes()
    }

    #[test]
    fn takes_the_sub_claim() {
        let t = format!("{HEADER}.{PAYLOAD}.c2lnbmF0dXJl");
        assert_eq!(oauth_subject(&msg(&t)).as_deref(), Some("alice"));
        let unsecured = format!("{HEADER}.{PAYLOAD}.");
        assert_eq!(oauth_subject(&msg(&unsecured)).as_deref(), Some("alice"));
        let with_authzid = format!("y,a=alice,\x01auth=bearer {HEADER}.{PAYLOAD}.x\x01\x01");
        assert_eq!(
            oauth_subject(with_authzid.as_bytes()).as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn malformed_tokens_yield_nothing() {
        for t in [
            format!("{HEADER}.{PAYLOAD}"),           // two parts
            format!("{HEADER}.{PAYLOAD}.s.extra"),   // four parts
            format!("{HEADER}..s"),                  // empty payload
            format!("{HEADER}.{PAYLOAD}!.s"),        // not base64url
            format!("{HEADER}.{}.s", &PAYLOAD[1..]), // length 4n+1
            format!("{HEADER}.{HEADER}.s"),          // no sub
            format!("{HEADER}.ImFsaWNlIg.s"),        // "alice": not an object
            format!("{HEADER}.eyJzdWIiOjF9.s"),      // {"sub":1}
            format!("{HEADER}.eyJzdWIiOiIifQ.s"),    // {"sub":""}
            format!("{HEADER}.{}.s", "A".repeat(MAX_PAYLOAD + 4)),
        ] {
            assert_eq!(oauth_subject(&msg(&t)), None, "{t}");
        }
        let good = format!("{HEADER}.{PAYLOAD}.s");
        for m in [
            format!("n,,\x01auth=Bearer {good}\x01"), // no closing empty pair
            format!("n,,auth=Bearer {good}\x01\x01"), // no \x01 after gs2
            format!("x,,\x01auth=Bearer {good}\x01\x01"), // bad gs2 flag
            format!("n,b=x,\x01auth=Bearer {good}\x01\x01"), // bad authzid
            format!("n,,\x01auth=Basic {good}\x01\x01"), // another scheme
            format!("n,,\x01auth=Bearer{good}\x01\x01"), // no space
            format!("n,,\x01\x01auth=Bearer {good}\x01\x01"), // empty pair inside
            format!("n,,\x01a=Bearer {good}\x01auth=Bearer {good}\x01auth=Bearer {good}\x01\x01"),
            "n,,\x01host=x\x01\x01".to_owned(), // no auth
        ] {
            assert_eq!(oauth_subject(m.as_bytes()), None, "{m:?}");
        }
    }

    #[test]
    fn base64url_round_trips_padded_and_not() {
        assert_eq!(base64url(b"YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(base64url(b"YWI").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64url(b"YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64url(b"YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64url(b"-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(base64url(b"YQ=a"), None);
        assert_eq!(base64url(b"Y"), None);
        assert_eq!(base64url(b"YW+j"), None);
    }
}
