//! Incremental decoders for the two streaming wire formats remote servers use: server-sent
//! events (OpenAI-compatible servers, Anthropic) and newline-delimited JSON (Ollama).
//!
//! Network reads split a stream anywhere: inside a line, between `\r` and `\n`, inside a
//! multi-byte UTF-8 character. Both decoders therefore buffer raw bytes and only decode a line
//! once its terminator has arrived, so a character is never torn and the result does not
//! depend on how the bytes were chunked (checked by a property test below).

/// The longest line a decoder buffers. A server that sends one endless line (or a body that
/// is not line-based at all) would otherwise grow the buffer until memory runs out; past this
/// the decoder drops the rest of the line and reports it ([`LineDecoder::overlong`]), and the
/// caller fails the stream.
pub(crate) const MAX_LINE_BYTES: usize = 8 << 20;

/// Splits a byte stream into lines ending in `\n`, `\r\n` or a lone `\r`.
#[derive(Debug, Default)]
pub(crate) struct LineDecoder {
    buf: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next chunk belongs to it.
    after_cr: bool,
    /// A line grew past [`MAX_LINE_BYTES`] (sticky).
    overlong: bool,
}

impl LineDecoder {
    /// Feed bytes; returns every line completed by them, without terminators.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => lines.push(self.take()),
                b'\r' => {
                    lines.push(self.take());
                    self.after_cr = true;
                }
                _ if self.buf.len() < MAX_LINE_BYTES => self.buf.push(b),
                _ => self.overlong = true,
            }
        }
        lines
    }

    /// Whether a line was longer than [`MAX_LINE_BYTES`] (its rest was dropped).
    pub fn overlong(&self) -> bool {
        self.overlong
    }

    /// The unterminated last line at end of stream, if any.
    pub fn finish(&mut self) -> Option<String> {
        (!self.buf.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        line
    }
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, if the server named the event.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Server-sent events, per the WHATWG event-stream grammar: fields up to a blank line make one
/// event; `data:` lines are joined with newlines; lines starting with `:` are comments
/// (keep-alives); `id:` and `retry:` are accepted and ignored.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    lines: LineDecoder,
    event: Option<String>,
    data: Vec<String>,
    /// Lines seen so far that are not event-stream fields (used to spot non-SSE bodies).
    pub foreign_lines: usize,
    /// Lines seen so far that are event-stream fields or comments.
    pub field_lines: usize,
    /// The first non-blank line, kept to quote when the body turns out not to be SSE.
    pub first_line: Option<String>,
}

impl SseDecoder {
    /// Whether a line was longer than [`MAX_LINE_BYTES`].
    pub fn overlong(&self) -> bool {
        self.lines.overlong()
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for line in self.lines.feed(bytes) {
            if let Some(ev) = self.line(line) {
                out.push(ev);
            }
        }
        out
    }

    /// End of stream: an event the server did not terminate with a blank line is still
    /// delivered (servers that close right after their last `data:` line are common).
    pub fn finish(&mut self) -> Option<SseEvent> {
        let last = self.lines.finish().and_then(|l| self.line(l));
        last.or_else(|| self.dispatch())
    }

    fn line(&mut self, line: String) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if self.first_line.is_none() {
            self.first_line = Some(line.clone());
        }
        if line.starts_with(':') {
            self.field_lines += 1;
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                self.field_lines += 1;
                self.data.push(value.to_string());
            }
            "event" => {
                self.field_lines += 1;
                self.event = Some(value.to_string());
            }
            "id" | "retry" => self.field_lines += 1,
            _ => self.foreign_lines += 1,
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if self.data.is_empty() {
            // Per the spec an event without data is not dispatched; its name is dropped too.
            self.event = None;
            return None;
        }
        let data = std::mem::take(&mut self.data).join("\n");
        Some(SseEvent {
            event: self.event.take(),
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(bytes: &[u8]) -> Vec<SseEvent> {
        let mut d = SseDecoder::default();
        let mut out = d.feed(bytes);
        out.extend(d.finish());
        out
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_string),
            data: data.to_string(),
        }
    }

    #[test]
    fn data_lines_join_comments_and_ids_are_ignored() {
        let s = b": keep-alive\n\nid: 7\nevent: message_start\ndata: {\"a\":\ndata: 1}\nretry: 10\n\ndata:[DONE]\n\n";
        assert_eq!(
            all(s),
            [ev(Some("message_start"), "{\"a\":\n1}"), ev(None, "[DONE]")]
        );
    }

    #[test]
    fn crlf_and_lone_cr_end_lines() {
        assert_eq!(
            all(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"),
            [ev(None, "a"), ev(None, "b"), ev(None, "c")]
        );
    }

    #[test]
    fn crlf_split_between_reads_is_one_terminator() {
        let mut d = SseDecoder::default();
        assert!(d.feed(b"data: a\r").is_empty());
        assert_eq!(d.feed(b"\n\r\n"), [ev(None, "a")]);
    }

    #[test]
    fn unterminated_last_event_is_delivered_at_end() {
        assert_eq!(all(b"data: x\n\ndata: y"), [ev(None, "x"), ev(None, "y")]);
    }

    #[test]
    fn foreign_lines_are_counted() {
        let mut d = SseDecoder::default();
        assert!(d.feed(b"<html>\n<body>oops</body>\n").is_empty());
        assert_eq!(d.foreign_lines, 2);
        assert_eq!(d.field_lines, 0);
        assert_eq!(d.first_line.as_deref(), Some("<html>"));
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let text = "data: é€😀\n\n".as_bytes();
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for b in text {
            out.extend(d.feed(std::slice::from_ref(b)));
        }
        assert_eq!(out, [ev(None, "é€😀")]);
    }

    #[test]
    fn an_endless_line_stops_growing_and_is_reported() {
        let mut d = LineDecoder::default();
        let block = vec![b'a'; 1 << 20];
        for _ in 0..(MAX_LINE_BYTES >> 20) + 3 {
            assert!(d.feed(&block).is_empty());
        }
        assert!(d.overlong());
        assert!(d.buf.len() <= MAX_LINE_BYTES);
        let lines = d.feed(b"\nnext\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1], "next");
    }

    #[test]
    fn ndjson_lines() {
        let mut d = LineDecoder::default();
        assert_eq!(d.feed(b"{\"a\":1}\n{\"b\""), ["{\"a\":1}"]);
        assert_eq!(d.feed(b":2}\n"), ["{\"b\":2}"]);
        assert_eq!(d.finish(), None);
    }

    /// A stream of events with multi-line data, comments, CRLF/LF endings and non-ASCII text.
    fn stream_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<SseEvent>)> {
        let line = "[a-zé€😀 {}\":,]{0,12}";
        let event = (
            proptest::option::of("[a-z_]{1,8}"),
            proptest::collection::vec(line, 1..4),
            any::<bool>(),
            any::<bool>(),
        );
        proptest::collection::vec(event, 0..8).prop_map(|events| {
            let mut bytes = Vec::new();
            let mut expected = Vec::new();
            for (name, lines, crlf, comment) in events {
                let nl = if crlf { "\r\n" } else { "\n" };
                if comment {
                    bytes.extend(format!(": ping{nl}").as_bytes());
                }
                if let Some(n) = &name {
                    bytes.extend(format!("event: {n}{nl}").as_bytes());
                }
                for l in &lines {
                    bytes.extend(format!("data: {l}{nl}").as_bytes());
                }
                bytes.extend(nl.as_bytes());
                expected.push(SseEvent {
                    event: name,
                    data: lines.join("\n"),
                });
            }
            (bytes, expected)
        })
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_events(
            (bytes, expected) in stream_strategy(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut d = SseDecoder::default();
            let mut got = Vec::new();
            let mut start = 0;
            for p in points.into_iter().chain([bytes.len()]) {
                got.extend(d.feed(&bytes[start..p]));
                start = p;
            }
            got.extend(d.finish());
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn any_chunking_gives_the_same_ndjson_lines(
            lines in proptest::collection::vec("[a-zé😀{}\":]{0,10}", 0..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let bytes: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut d = LineDecoder::default();
            let mut got = Vec::new();
            let mut start = 0;
            for p in points.into_iter().chain([bytes.len()]) {
                got.extend(d.feed(&bytes[start..p]));
                start = p;
            }
            got.extend(d.finish());
            prop_assert_eq!(got, lines);
        }
    }
}
