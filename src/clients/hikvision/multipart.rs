//! The alert stream's body: `multipart/mixed` parts, read as the bytes arrive. A part has
//! headers, a blank line and a body — of `Content-Length` bytes when the camera says (most
//! firmwares), else up to the next boundary.

/// Bytes held without a whole part before the stream counts as malformed.
const MAX_PENDING: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// The boundary of a `multipart/...; boundary=...` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

pub struct Multipart {
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    finished: bool,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

impl Multipart {
    pub fn new(boundary: &str) -> Self {
        // Some firmwares put the dashes into the boundary parameter itself.
        let boundary = boundary.trim_start_matches("--");
        Self {
            delimiter: format!("--{boundary}").into_bytes(),
            buf: Vec::new(),
            finished: false,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Whether the closing boundary has come.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next whole part, `Ok(None)` until one has arrived; an error for a stream that is not
    /// multipart (the buffer is then dropped).
    pub fn next_part(&mut self) -> Result<Option<Part>, String> {
        let result = self.take();
        if result.is_err() || (matches!(result, Ok(None)) && self.buf.len() > MAX_PENDING) {
            self.buf.clear();
            return result.and(Err(format!(
                "{MAX_PENDING} bytes without a whole multipart part"
            )));
        }
        result
    }

    fn take(&mut self) -> Result<Option<Part>, String> {
        if self.finished {
            return Ok(None);
        }
        let Some(start) = find(&self.buf, &self.delimiter, 0) else {
            return Ok(None);
        };
        let after = start + self.delimiter.len();
        if self.buf.len() < after + 2 {
            return Ok(None);
        }
        if &self.buf[after..after + 2] == b"--" {
            self.finished = true;
            self.buf.clear();
            return Ok(None);
        }
        let Some(headers_start) = find(&self.buf, b"\n", after).map(|p| p + 1) else {
            return Ok(None);
        };
        let (headers_end, body_start) = match (
            find(&self.buf, b"\r\n\r\n", headers_start),
            find(&self.buf, b"\n\n", headers_start),
        ) {
            (Some(crlf), Some(lf)) if lf < crlf => (lf, lf + 2),
            (Some(crlf), _) => (crlf, crlf + 4),
            (None, Some(lf)) => (lf, lf + 2),
            (None, None) => return Ok(None),
        };
        // A part with no headers at all starts its body right after the delimiter's line.
        let (headers_end, body_start) = if self.buf[headers_start..].starts_with(b"\r\n") {
            (headers_start, headers_start + 2)
        } else {
            (headers_end, body_start)
        };
        let headers = String::from_utf8_lossy(&self.buf[headers_start..headers_end]).into_owned();
        let mut content_type = None;
        let mut length = None;
        for line in headers.lines() {
            let Some((name, value)) = line.split_once(':') else {
                return Err(format!("a part header without a colon: {line:?}"));
            };
            let value = value.trim();
            if name.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(value.to_owned());
            } else if name.trim().eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| format!("a Content-Length of {value:?}"))?,
                );
            }
        }
        let (body, consumed) = match length {
            Some(n) if n > MAX_PENDING => return Err(format!("a part of {n} bytes")),
            Some(n) => {
                if self.buf.len() < body_start + n {
                    return Ok(None);
                }
                (
                    self.buf[body_start..body_start + n].to_vec(),
                    body_start + n,
                )
            }
            None => {
                let Some(next) = find(&self.buf, &self.delimiter, body_start) else {
                    return Ok(None);
                };
                let mut end = next;
                while end > body_start && matches!(self.buf[end - 1], b'\r' | b'\n') {
                    end -= 1;
                }
                (self.buf[body_start..end].to_vec(), next)
            }
        };
        self.buf.drain(..consumed);
        Ok(Some(Part { content_type, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(body: &str, with_length: bool) -> String {
        let length = if with_length {
            format!("Content-Length: {}\r\n", body.len())
        } else {
            String::new()
        };
        format!("--boundary\r\nContent-Type: application/xml; charset=\"UTF-8\"\r\n{length}\r\n{body}\r\n")
    }

    #[test]
    fn parts_come_out_whole_however_the_bytes_are_cut() {
        let stream = format!(
            "{}{}{}--boundary--\r\n",
            part("<a>1</a>", true),
            part("<b>2</b>", false),
            part("<c>3</c>", true)
        );
        for cut in [1, 3, 7, 64, stream.len()] {
            let mut m = Multipart::new("boundary");
            let mut bodies = Vec::new();
            for chunk in stream.as_bytes().chunks(cut) {
                m.push(chunk);
                while let Some(p) = m.next_part().unwrap() {
                    assert!(p.content_type.unwrap().starts_with("application/xml"));
                    bodies.push(String::from_utf8(p.body).unwrap());
                }
            }
            assert_eq!(bodies, ["<a>1</a>", "<b>2</b>", "<c>3</c>"], "cut {cut}");
            assert!(m.is_finished());
        }
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        assert_eq!(
            boundary("multipart/mixed; boundary=boundary").as_deref(),
            Some("boundary")
        );
        assert_eq!(
            boundary("multipart/mixed;boundary=\"--xyz\"").as_deref(),
            Some("--xyz")
        );
        assert_eq!(boundary("application/xml"), None);
        let mut m = Multipart::new("--xyz");
        m.push(b"----xyz\r\nContent-Length: 2\r\n\r\nok\r\n");
        assert_eq!(m.next_part().unwrap().unwrap().body, b"ok");
    }

    #[test]
    fn garbage_is_an_error_or_waits_never_a_panic() {
        let mut m = Multipart::new("boundary");
        m.push(b"--boundary\r\nno colon here\r\n\r\nbody");
        assert!(m.next_part().is_err());
        let mut m = Multipart::new("boundary");
        m.push(b"--boundary\r\nContent-Length: lots\r\n\r\nbody");
        assert!(m.next_part().is_err());
        let mut m = Multipart::new("boundary");
        m.push(&vec![b'x'; MAX_PENDING + 1]);
        assert!(m.next_part().is_err());
        m.push(part("<a/>", true).as_bytes());
        assert_eq!(
            m.next_part().unwrap().unwrap().body,
            b"<a/>",
            "recovers after the error"
        );
    }
}
