//! The `client.id` of a connection's first request, peeked: the bytes stay in the socket's
//! receive queue for the forwarding path to read, so nothing is consumed, altered or replayed.
//!
//! A request starts `size i32, api_key i16, api_version i16, correlation_id i32, client_id
//! nullable string (i16 length)` (request header v1 and v2; v2 adds tagged fields after it).
//! First bytes that cannot be that — a TLS ClientHello, garbage, a header v0 request — are
//! [`First::NotKafka`]: the connection is forwarded as any other, uncounted per client key.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use tokio::net::TcpStream;

/// Longest `client.id` read; a longer one counts by its first this many bytes.
pub const MAX_CLIENT_ID: usize = 1024;
/// Most bytes peeked: the frame size, the header's fixed fields and [`MAX_CLIENT_ID`].
pub const MAX_HEADER: usize = 4 + 10 + MAX_CLIENT_ID;
/// Largest first request taken for Kafka: the broker's default `socket.request.max.bytes`
/// (100 MiB). A TLS record starts with 0x16, which reads as a size above it.
const MAX_REQUEST_SIZE: i32 = 100 << 20;
/// Highest API version taken for Kafka (today's highest is below 20).
const MAX_API_VERSION: i16 = 63;
/// Pauses between peeks while a header arrives in pieces, growing to the longest.
const PEEK_PAUSES: [Duration; 4] = [
    Duration::from_millis(1),
    Duration::from_millis(5),
    Duration::from_millis(20),
    Duration::from_millis(50),
];

/// What a connection's first bytes say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum First {
    /// A Kafka request header: its `client.id` (empty for a null one; invalid UTF-8 is not
    /// Kafka).
    ClientId(String),
    /// Not a Kafka request header.
    NotKafka,
    /// The client closed (or the socket failed) before a whole header arrived.
    Closed,
    /// No whole header within the wait.
    TimedOut,
}

/// What the bytes so far say.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Done(First),
    More,
}

fn i16_at(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads a first request header from `b` (the bytes peeked so far, frame size included).
fn parse(b: &[u8]) -> Parsed {
    let not = Parsed::Done(First::NotKafka);
    let Some(size) = i32_at(b, 0) else {
        return Parsed::More;
    };
    if !(10..=MAX_REQUEST_SIZE).contains(&size) {
        return not;
    }
    let Some(api_key) = i16_at(b, 4) else {
        return Parsed::More;
    };
    if ApiKey::try_from(api_key).is_err() {
        return not;
    }
    let Some(api_version) = i16_at(b, 6) else {
        return Parsed::More;
    };
    if !(0..=MAX_API_VERSION).contains(&api_version)
        || sluice_protocol::header::request_header_version(api_key, api_version) < 1
    {
        return not; // header v0 has no client.id
    }
    let Some(id_len) = i16_at(b, 12) else {
        return Parsed::More;
    };
    let id_len = match id_len {
        -1 => return Parsed::Done(First::ClientId(String::new())),
        n if n < 0 || 10 + n as i32 > size => return not,
        n => n as usize,
    };
    let kept = id_len.min(MAX_CLIENT_ID);
    let Some(id) = b.get(14..14 + kept) else {
        return Parsed::More;
    };
    match std::str::from_utf8(id) {
        Ok(s) => Parsed::Done(First::ClientId(s.to_owned())),
        // Cut inside a character: keep the whole ones before it.
        Err(e) if kept < id_len && e.error_len().is_none() => Parsed::Done(First::ClientId(
            String::from_utf8_lossy(&id[..e.valid_up_to()]).into_owned(),
        )),
        Err(_) => not,
    }
}

/// Peeks at `stream` until its first request header is there (or is not Kafka), for at most
/// `wait`. Reads nothing: the bytes are left for the forwarding path.
pub async fn first(stream: &TcpStream, wait: Duration) -> First {
    let mut buf = [0u8; MAX_HEADER];
    let peek = async {
        let mut seen = 0;
        let mut pauses = PEEK_PAUSES.iter().copied();
        let mut pause = PEEK_PAUSES[0];
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return First::Closed,
                Ok(n) => n,
            };
            match parse(&buf[..n]) {
                Parsed::Done(first) => return first,
                Parsed::More if n == buf.len() => return First::NotKafka, // cannot happen
                Parsed::More => {}
            }
            // A peek answers at once while any byte is queued: pause before asking again,
            // longer while nothing new arrives.
            if n > seen {
                (seen, pauses) = (n, PEEK_PAUSES.iter().copied());
            }
            pause = pauses.next().unwrap_or(pause);
            tokio::time::sleep(pause).await;
        }
    };
    tokio::time::timeout(wait, peek)
        .await
        .unwrap_or(First::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request frame: size, ApiVersions v3 (header v2), correlation id 7, `client_id`.
    fn request(client_id: Option<&[u8]>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&18i16.to_be_bytes()); // api_key: ApiVersions
        body.extend_from_slice(&3i16.to_be_bytes()); // api_version
        body.extend_from_slice(&7i32.to_be_bytes()); // correlation_id
        match client_id {
            None => body.extend_from_slice(&(-1i16).to_be_bytes()),
            Some(id) => {
                body.extend_from_slice(&(id.len() as i16).to_be_bytes());
                body.extend_from_slice(id);
            }
        }
        body.push(0); // tagged fields
        body.extend_from_slice(&[0; 8]); // a body
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn a_header_gives_its_client_id_once_whole() {
        let frame = request(Some(b"orders-app"));
        for cut in 0..14 + 10 {
            assert_eq!(parse(&frame[..cut]), Parsed::More, "at {cut}");
        }
        assert_eq!(
            parse(&frame),
            Parsed::Done(First::ClientId("orders-app".into()))
        );
        assert_eq!(
            parse(&request(None)),
            Parsed::Done(First::ClientId(String::new()))
        );
    }

    #[test]
    fn tls_garbage_and_header_v0_are_not_kafka() {
        let not = Parsed::Done(First::NotKafka);
        // A TLS ClientHello record whose key bytes read as Fetch: its size is too large.
        assert_eq!(
            parse(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]),
            not
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), not);
        assert_eq!(parse(&[0, 0, 0, 20, 0x7f, 0x7f]), not, "unknown api key");
        assert_eq!(parse(&[0, 0, 0, 20, 0, 18, 0x7f, 0]), not, "version");
        assert_eq!(
            parse(&[0, 0, 0, 20, 0, 7, 0, 0]),
            not,
            "ControlledShutdown v0"
        );
        let mut bad_len = request(Some(b"x"));
        bad_len[12..14].copy_from_slice(&(-2i16).to_be_bytes());
        assert_eq!(parse(&bad_len), not);
        let mut beyond = request(Some(b"x"));
        beyond[12..14].copy_from_slice(&500i16.to_be_bytes());
        assert_eq!(parse(&beyond), not, "a client.id longer than its frame");
        assert_eq!(parse(&request(Some(b"\xff\xfe"))), not, "not UTF-8");
    }

    #[test]
    fn a_long_client_id_counts_by_its_first_bytes() {
        let long = "é".repeat(MAX_CLIENT_ID); // 2 bytes each: cut inside a character
        let frame = request(Some(long.as_bytes()));
        let Parsed::Done(First::ClientId(id)) = parse(&frame[..MAX_HEADER]) else {
            panic!("not read");
        };
        assert_eq!(id.len(), MAX_CLIENT_ID);
        assert!(long.starts_with(&id));
        let mut odd = "a".to_owned();
        odd.push_str(&long);
        let frame = request(Some(odd.as_bytes()));
        let Parsed::Done(First::ClientId(id)) = parse(&frame[..MAX_HEADER]) else {
            panic!("not read");
        };
        assert_eq!(id.len(), MAX_CLIENT_ID - 1, "the cut character left out");
    }
}
