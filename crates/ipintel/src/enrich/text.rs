//! Writing JSON strings and CSV fields into byte buffers.

/// Appends `bytes` as a JSON string (quotes included). Invalid UTF-8 is
/// replaced by U+FFFD, so the output is always valid JSON.
pub fn json_str(out: &mut Vec<u8>, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => json_escaped(out, text),
        Err(_) => json_escaped(out, &String::from_utf8_lossy(bytes)),
    }
}

fn json_escaped(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends `bytes` as a JSON string, or `null` for a lone `-` (the
/// combined log format's "no value").
pub fn json_str_or_null(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes == b"-" {
        out.extend_from_slice(b"null");
    } else {
        json_str(out, bytes);
    }
}

/// Appends `bytes` as a CSV field: quoted (with quotes doubled) when it
/// holds a comma, a quote or a line break, as is otherwise.
pub fn csv_field(out: &mut Vec<u8>, bytes: &[u8]) {
    let needs_quotes = bytes
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if !needs_quotes {
        out.extend_from_slice(bytes);
        return;
    }
    out.push(b'"');
    for &b in bytes {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        json_str(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    fn csv(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        csv_field(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_strings_round_trip() {
        for text in [
            "plain",
            "a \"quoted\" \\ path",
            "tab\tnew\nline\u{1}",
            "ünï",
        ] {
            let encoded = json(text.as_bytes());
            let back: String = serde_json::from_str(&encoded).unwrap();
            assert_eq!(back, text);
        }
        assert_eq!(json(b"\\x22"), r#""\\x22""#);
        assert_eq!(json(b"bad \xff byte"), "\"bad \u{fffd} byte\"");
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv(b"plain text"), "plain text");
        assert_eq!(csv(b"a,b"), "\"a,b\"");
        assert_eq!(csv(b"say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv(b"two\nlines"), "\"two\nlines\"");
    }
}
