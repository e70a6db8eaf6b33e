//! Just enough JSON for the core. The core reads a handful of top-level fields of each
//! server message (`type`, `id`, `room`, `_ack`, ...) and passes the message on to the
//! app as JSON text, which the browser's own `JSON.parse` turns into a JS value. So this
//! module validates a frame, splits an object into raw member texts and an array into raw
//! element texts, and decodes strings and integers; it never builds a DOM. That keeps a
//! general-purpose JSON library (and its number formatting) out of the browser package.

use std::borrow::Cow;

/// Nesting deeper than this is refused (a hostile frame cannot exhaust the stack).
const MAX_DEPTH: usize = 128;

/// A JSON object as its members' keys and raw value texts, in document order.
#[derive(Debug, Default)]
pub struct Object<'a> {
    members: Vec<(Cow<'a, str>, &'a str)>,
}

impl<'a> Object<'a> {
    /// Parses `text`, which must be exactly one JSON object (whitespace around it is
    /// fine). `None` for anything else, including invalid JSON anywhere inside.
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut scanner = Scanner { text, at: 0 };
        scanner.space();
        let object = scanner.object_members()?;
        scanner.space();
        (scanner.at == text.len()).then_some(object)
    }

    /// The raw text of member `key` (the last one, as `JSON.parse` does).
    pub fn raw(&self, key: &str) -> Option<&'a str> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, raw)| *raw)
    }

    /// Member `key` when it is a string.
    pub fn str(&self, key: &str) -> Option<Cow<'a, str>> {
        self.raw(key).and_then(string)
    }

    /// Member `key` when it is a non-negative integer that fits in `u64`.
    pub fn u64(&self, key: &str) -> Option<u64> {
        let raw = self.raw(key)?;
        if raw.len() > 1 && raw.starts_with('0') {
            return None;
        }
        raw.bytes().try_fold(0_u64, |n, b| {
            let digit = char::from(b).to_digit(10)?;
            n.checked_mul(10)?.checked_add(u64::from(digit))
        })
    }

    /// Whether member `key` is `true`.
    pub fn is_true(&self, key: &str) -> bool {
        self.raw(key) == Some("true")
    }

    /// The members, in document order.
    pub fn members(&self) -> impl Iterator<Item = (&str, &'a str)> {
        self.members.iter().map(|(k, raw)| (k.as_ref(), *raw))
    }
}

/// The elements of a raw JSON array (from [`Object::raw`]), as raw texts.
pub fn array(raw: &str) -> Option<Vec<&str>> {
    let mut scanner = Scanner { text: raw, at: 0 };
    let mut items = Vec::new();
    scanner.sequence(b'[', b']', |s| {
        items.push(s.value(1)?);
        Some(())
    })?;
    (scanner.at == raw.len()).then_some(items)
}

/// Decodes a raw JSON string (with its quotes); `None` when `raw` is not one.
pub fn string(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let high = hex4(&mut chars)?;
                if (0xD800..0xDC00).contains(&high) {
                    // A surrogate pair; a lone half decodes to U+FFFD, as in browsers.
                    let rest = chars.as_str();
                    match rest.strip_prefix("\\u").and_then(|r| r.get(..4)) {
                        Some(hex) => match u32::from_str_radix(hex, 16) {
                            Ok(low @ 0xDC00..0xE000) => {
                                chars.nth(5);
                                char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?
                            }
                            _ => '\u{FFFD}',
                        },
                        None => '\u{FFFD}',
                    }
                } else {
                    char::from_u32(high).unwrap_or('\u{FFFD}')
                }
            }
            _ => return None,
        };
        out.push(decoded);
    }
    Some(Cow::Owned(out))
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    (0..4).try_fold(0, |n, _| Some(n * 16 + chars.next()?.to_digit(16)?))
}

/// Appends `value` as a JSON string literal.
pub fn push_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let n = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[n >> 4]));
                out.push(char::from(HEX[n & 15]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `value` as a JSON string literal.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    push_string(&mut out, value);
    out
}

/// A validating cursor over JSON text (RFC 8259).
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.at += usize::from(hit);
        hit
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        self.at - start
    }

    /// One value at nesting `depth`; returns its raw text.
    fn value(&mut self, depth: usize) -> Option<&'a str> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.at;
        match self.peek()? {
            b'{' => self.sequence(b'{', b'}', |s| s.member(depth + 1).map(drop))?,
            b'[' => self.sequence(b'[', b']', |s| s.value(depth + 1).map(drop))?,
            b'"' => {
                self.string_token()?;
            }
            b't' | b'f' | b'n' => {
                let rest = self.text.get(self.at..)?;
                let word = ["true", "false", "null"]
                    .into_iter()
                    .find(|w| rest.starts_with(w))?;
                self.at += word.len();
            }
            _ => self.number()?,
        }
        self.text.get(start..self.at)
    }

    /// The top-level object, split into members.
    fn object_members(&mut self) -> Option<Object<'a>> {
        let mut members = Vec::new();
        self.sequence(b'{', b'}', |s| {
            members.push(s.member(1)?);
            Some(())
        })?;
        Some(Object { members })
    }

    /// `open`, items separated by commas, `close`, with whitespace between; `item` reads
    /// one item.
    fn sequence(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.expect(open)?;
        self.space();
        if self.eat(close) {
            return Some(());
        }
        loop {
            item(self)?;
            self.space();
            if self.eat(close) {
                return Some(());
            }
            self.expect(b',')?;
            self.space();
        }
    }

    /// One `"key": value` member, the value at nesting `depth`.
    fn member(&mut self, depth: usize) -> Option<(Cow<'a, str>, &'a str)> {
        let key = string(self.string_token()?)?;
        self.space();
        self.expect(b':')?;
        self.space();
        Some((key, self.value(depth)?))
    }

    /// A string literal, validated; returns it with its quotes.
    fn string_token(&mut self) -> Option<&'a str> {
        let start = self.at;
        self.expect(b'"')?;
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return self.text.get(start..self.at);
                }
                b'\\' => {
                    self.at += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        b'u' => {
                            let hex = self.text.get(self.at + 1..self.at + 5)?;
                            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                                return None;
                            }
                            self.at += 5;
                        }
                        _ => return None,
                    }
                }
                0..0x20 => return None,
                _ => self.at += 1,
            }
        }
    }

    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.eat(b'.') && self.digits() == 0 {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_split_into_raw_members() {
        let text = r#" { "type" : "chat", "id":"00000000000000a1", "n": -1.5e3,
            "data": {"a": [1, {"b": null}], "c": "x\"y"}, "ok": true, "type": "reply" } "#;
        let object = Object::parse(text).unwrap();
        assert_eq!(
            object.str("type").as_deref(),
            Some("reply"),
            "last duplicate wins"
        );
        assert_eq!(object.raw("n"), Some("-1.5e3"));
        assert_eq!(
            object.raw("data"),
            Some(r#"{"a": [1, {"b": null}], "c": "x\"y"}"#)
        );
        assert!(object.is_true("ok"));
        assert!(!object.is_true("n"));
        assert_eq!(object.raw("missing"), None);
        assert_eq!(object.members().count(), 6);
        let data: serde_json::Value = serde_json::from_str(object.raw("data").unwrap()).unwrap();
        assert_eq!(data["c"], "x\"y");
    }

    #[test]
    fn anything_but_one_valid_object_is_refused() {
        for text in [
            "",
            "[]",
            "\"x\"",
            "1",
            "{",
            "{}}",
            "{} {}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":tru}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12g4\"}",
            "{\"a\":[1,]}",
            "{\"a\":[1 2]}",
            "{\"a\":\"open}",
            "{\"a\":+1}",
            "{\"a\":-}",
        ] {
            assert!(Object::parse(text).is_none(), "{text:?} was accepted");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(Object::parse(&deep).is_none(), "nesting is bounded");
        let fine = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(Object::parse(&fine).is_some());
        assert!(Object::parse("{}").is_some());
    }

    #[test]
    fn every_valid_json_the_server_sends_is_accepted_as_serde_json_reads_it() {
        let value = serde_json::json!({
            "type": "chat", "unicode": "héllo ✓ 😀", "escapes": "a\"b\\c\n\t\u{1}/",
            "numbers": [0, -0, 12, 1.25, -3e-7, 1E+9, u64::MAX], "nested": {"x": [[], {}]},
            "t": true, "f": false, "nil": null,
        });
        let text = value.to_string();
        let object = Object::parse(&text).unwrap();
        for (key, raw) in object.members() {
            let back: serde_json::Value = serde_json::from_str(raw).unwrap();
            assert_eq!(back, value[key], "{key}");
        }
        assert_eq!(object.str("unicode").unwrap(), "héllo ✓ 😀");
        assert_eq!(object.str("escapes").unwrap(), "a\"b\\c\n\t\u{1}/");
    }

    #[test]
    fn strings_decode_every_escape() {
        let cases = [
            (r#""plain""#, "plain"),
            (r#""\"\\\/\b\f\n\r\t""#, "\"\\/\u{8}\u{c}\n\r\t"),
            (r#""\u00e9\u2713""#, "é✓"),
            (r#""\ud83d\ude00!""#, "😀!"),
            (r#""\ud83d!""#, "\u{FFFD}!"),
            (r#""\ude00""#, "\u{FFFD}"),
        ];
        for (raw, expected) in cases {
            assert_eq!(string(raw).as_deref(), Some(expected), "{raw}");
        }
        assert_eq!(string("1"), None);
        assert_eq!(string(r#""\q""#), None);
    }

    #[test]
    fn integers_are_read_exactly_and_nothing_else_is() {
        let object = Object::parse(
            r#"{"a":0,"b":42,"c":18446744073709551615,"d":18446744073709551616,"e":-1,"f":1.5,"g":"7","h":1e3}"#,
        )
        .unwrap();
        assert_eq!(object.u64("a"), Some(0));
        assert_eq!(object.u64("b"), Some(42));
        assert_eq!(object.u64("c"), Some(u64::MAX));
        for key in ["d", "e", "f", "g", "h", "missing"] {
            assert_eq!(object.u64(key), None, "{key}");
        }
    }

    #[test]
    fn arrays_split_into_raw_elements() {
        assert_eq!(array("[]"), Some(vec![]));
        assert_eq!(
            array(r#"[ {"a":1} , "x,y" ,[2,3],null ]"#),
            Some(vec![r#"{"a":1}"#, r#""x,y""#, "[2,3]", "null"])
        );
        assert_eq!(array("{}"), None);
        assert_eq!(array("[1,]"), None);
    }

    #[test]
    fn quoting_round_trips_through_serde_json() {
        for text in [
            "",
            "plain",
            "a\"b\\c",
            "line\nbreak\r\t",
            "\u{0}\u{1f}\u{7f}",
            "é😀</script>",
        ] {
            let quoted = quote(text);
            let back: String = serde_json::from_str(&quoted).unwrap();
            assert_eq!(back, text);
            assert_eq!(string(&quoted).as_deref(), Some(text));
        }
    }
}
