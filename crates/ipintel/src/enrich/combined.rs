//! The NCSA combined log format, shared by nginx (`combined`) and Apache
//! (`%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`):
//!
//! ```text
//! 203.0.113.9 - alice [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/8.5.0"
//! ```
//!
//! The common format (the same without referer and user agent) is accepted
//! too, and anything after the user agent (nginx formats often append
//! fields) is kept as `extra`. Quoted fields may hold `\"` (Apache's
//! escape); nginx writes `\x22` instead. Fields are returned as logged:
//! escapes are not decoded. Parsing borrows from the line, allocating
//! nothing.

/// The fields of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Client address (`$remote_addr`, `%h`).
    pub host: &'a [u8],
    /// RFC 1413 identity, nearly always `-`.
    pub ident: &'a [u8],
    /// Authenticated user or `-`.
    pub user: &'a [u8],
    /// Time, without the brackets.
    pub time: &'a [u8],
    /// Request line, without the quotes.
    pub request: &'a [u8],
    /// Status code.
    pub status: &'a [u8],
    /// Body bytes sent, or `-`.
    pub bytes: &'a [u8],
    /// Referer (absent in the common format).
    pub referer: Option<&'a [u8]>,
    /// User agent (absent in the common format).
    pub agent: Option<&'a [u8]>,
    /// Whatever follows the user agent, without the separating space.
    pub extra: &'a [u8],
}

/// The names of the fields, in order, as written to JSON and CSV.
pub const FIELDS: [&str; 10] = [
    "remote_addr",
    "ident",
    "remote_user",
    "time_local",
    "request",
    "status",
    "body_bytes_sent",
    "http_referer",
    "http_user_agent",
    "extra",
];

impl<'a> Entry<'a> {
    /// The fields in the order of [`FIELDS`]; absent ones are empty.
    pub fn fields(&self) -> [&'a [u8]; 10] {
        [
            self.host,
            self.ident,
            self.user,
            self.time,
            self.request,
            self.status,
            self.bytes,
            self.referer.unwrap_or_default(),
            self.agent.unwrap_or_default(),
            self.extra,
        ]
    }
}

/// Parses one line (without its line break), or `None` if it does not
/// have the layout.
pub fn parse(line: &[u8]) -> Option<Entry<'_>> {
    let (host, rest) = word(line)?;
    let (ident, rest) = word(rest)?;
    let (user, rest) = word(rest)?;
    let (time, rest) = bracketed(rest)?;
    let (request, rest) = quoted(rest)?;
    let (status, rest) = word(rest).unwrap_or((rest, b""));
    if status.is_empty() || !status.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let (bytes, rest) = word(rest).unwrap_or((rest, b""));
    if bytes != b"-" && (bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit)) {
        return None;
    }
    let mut entry = Entry {
        host,
        ident,
        user,
        time,
        request,
        status,
        bytes,
        referer: None,
        agent: None,
        extra: b"",
    };
    if rest.is_empty() {
        return Some(entry); // the common format
    }
    let (referer, rest) = quoted(rest)?;
    let (agent, rest) = quoted(rest)?;
    entry.referer = Some(referer);
    entry.agent = Some(agent);
    entry.extra = rest;
    Some(entry)
}

/// A non-empty run of non-space bytes followed by one space.
fn word(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = memchr::memchr(b' ', s)?;
    (end > 0).then(|| (&s[..end], &s[end + 1..]))
}

/// `[...]` followed by a space.
fn bracketed(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let inner = s.strip_prefix(b"[")?;
    let end = memchr::memchr(b']', inner)?;
    let rest = inner[end + 1..].strip_prefix(b" ")?;
    Some((&inner[..end], rest))
}

/// `"..."` (a backslash escapes the next byte) followed by a space or the
/// end of the line.
fn quoted(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let inner = s.strip_prefix(b"\"")?;
    let mut i = 0;
    while i < inner.len() {
        match inner[i] {
            b'\\' => i += 2,
            b'"' => {
                let after = &inner[i + 1..];
                let rest = match after {
                    [] => after,
                    [b' ', rest @ ..] => rest,
                    _ => return None,
                };
                return Some((&inner[..i], rest));
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX: &[u8] = b"203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] \"GET /a?b=c HTTP/1.1\" 200 612 \"https://example.com/\" \"Mozilla/5.0 (X11)\"";

    #[test]
    fn nginx_combined() {
        let e = parse(NGINX).unwrap();
        assert_eq!(e.host, b"203.0.113.9");
        assert_eq!(e.time, b"10/Oct/2026:13:55:36 +0000");
        assert_eq!(e.request, b"GET /a?b=c HTTP/1.1");
        assert_eq!((e.status, e.bytes), (&b"200"[..], &b"612"[..]));
        assert_eq!(e.referer, Some(&b"https://example.com/"[..]));
        assert_eq!(e.agent, Some(&b"Mozilla/5.0 (X11)"[..]));
        assert_eq!(e.extra, b"");
    }

    #[test]
    fn apache_escapes_and_dash_bytes() {
        let line = br#"2001:db8::1 - frank [10/Oct/2000:13:55:36 -0700] "GET /say \"hi\" HTTP/1.0" 304 - "-" "ua \"x\"""#;
        let e = parse(line).unwrap();
        assert_eq!(e.host, b"2001:db8::1");
        assert_eq!(e.user, b"frank");
        assert_eq!(e.request, br#"GET /say \"hi\" HTTP/1.0"#);
        assert_eq!(e.bytes, b"-");
        assert_eq!(e.agent, Some(&br#"ua \"x\""#[..]));
    }

    #[test]
    fn common_format_and_extra_fields() {
        let e = parse(b"1.2.3.4 - - [t] \"GET / HTTP/1.1\" 404 0").unwrap();
        assert_eq!((e.referer, e.agent), (None, None));
        let e = parse(b"1.2.3.4 - - [t] \"GET /\" 200 5 \"-\" \"ua\" \"10.0.0.1\" 0.003").unwrap();
        assert_eq!(e.extra, b"\"10.0.0.1\" 0.003");
    }

    #[test]
    fn broken_lines_are_refused() {
        let broken: [&[u8]; 9] = [
            b"",
            b"garbage",
            b"1.2.3.4 - - 10/Oct/2026 \"GET /\" 200 5",
            b"1.2.3.4 - - [t] GET / 200 5",
            b"1.2.3.4 - - [t] \"GET / 200 5",
            b"1.2.3.4 - - [t] \"GET /\" OK 5",
            b"1.2.3.4 - - [t] \"GET /\" 200 5 \"-\"",
            b"1.2.3.4 - - [t] \"GET /\" 200 5 \"-\" \"ua",
            b"{\"ip\": \"1.2.3.4\"}",
        ];
        for line in broken {
            assert_eq!(parse(line), None, "{}", String::from_utf8_lossy(line));
        }
    }
}
