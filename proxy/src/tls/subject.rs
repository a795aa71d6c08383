//! A certificate's subject as an RFC 4514 string (`CN=app-1,O=payments`): the most specific
//! name first, as Kafka's default SSL principal builder (Java's `X500Principal.getName()`)
//! writes it, so a principal seen by Sluice reads as the broker's ACLs name it.

use x509_parser::asn1_rs::{Tag, ToDer};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Longest subject kept, in bytes; a longer one is cut at a character boundary and ends in `…`.
pub const MAX_LEN: usize = 512;

/// The subject of a DER certificate, or `None` if it cannot be parsed.
pub fn of_der(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut out = String::new();
    for rdn in cert
        .subject()
        .iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        if !out.is_empty() {
            out.push(',');
        }
        for (i, attr) in rdn.iter().enumerate() {
            if i > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            match (short_name(&oid), text(attr)) {
                (Some(name), Some(value)) => {
                    out.push_str(name);
                    out.push('=');
                    escape(value, &mut out);
                }
                _ => {
                    // RFC 4514 2.4: an unknown type by its OID, the value as hex of its DER.
                    out.push_str(&oid);
                    out.push_str("=#");
                    for b in attr.attr_value().to_der_vec().unwrap_or_default() {
                        out.push_str(&format!("{b:02X}"));
                    }
                }
            }
        }
        if out.len() > MAX_LEN {
            break;
        }
    }
    Some(cut(out))
}

fn text<'a>(attr: &'a x509_parser::x509::AttributeTypeAndValue<'_>) -> Option<&'a str> {
    let v = attr.attr_value();
    match v.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::TeletexString => std::str::from_utf8(v.data).ok(),
        _ => None,
    }
}

/// The short names RFC 4514 (and Java) write instead of the OID.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// RFC 4514 2.4 escaping of an attribute value.
fn escape(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c if c.is_control() => out.push_str(&format!("\\{:02X}", c as u32 & 0xff)),
            c => out.push(c),
        }
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_LEN {
        let mut end = MAX_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_rfc_4514() {
        let mut out = String::new();
        escape(" a,b+c\"d\\e<f>g;h#i ", &mut out);
        assert_eq!(out, "\\ a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h#i\\ ");
        let mut out = String::new();
        escape("#x", &mut out);
        assert_eq!(out, "\\#x");
    }

    #[test]
    fn a_long_subject_is_cut() {
        let s = cut("é".repeat(MAX_LEN));
        assert!(s.len() <= MAX_LEN + '…'.len_utf8() && s.ends_with('…'));
    }

    #[test]
    fn garbage_is_no_subject() {
        assert_eq!(of_der(b"not a certificate"), None);
        assert_eq!(of_der(&[]), None);
    }
}
