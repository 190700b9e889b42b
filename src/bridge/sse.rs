//! Reading a `text/event-stream` (the SSE wire format) from chunks as they arrive: only what the
//! bridges need, the `data` of each event.

/// Largest event accepted: a bigger one means the peer is not the server we think it is.
pub const MAX_EVENT: usize = 8 * 1024 * 1024;

/// Collects chunks and hands out each complete event's data.
#[derive(Default)]
pub struct Reader {
    buffer: Vec<u8>,
}

impl Reader {
    /// Adds a chunk; returns the data of every event it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, String> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some((end, skip)) = boundary(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end + skip).collect();
            let text = String::from_utf8_lossy(&block[..end]);
            let mut data: Option<String> = None;
            for line in text.split('\n') {
                let line = line.strip_suffix('\r').unwrap_or(line);
                if let Some(value) = line.strip_prefix("data:") {
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match &mut data {
                        Some(d) => {
                            d.push('\n');
                            d.push_str(value);
                        }
                        None => data = Some(value.to_owned()),
                    }
                }
            }
            events.extend(data);
        }
        if self.buffer.len() > MAX_EVENT {
            return Err(format!(
                "an event of more than {} MiB: not the event stream expected",
                MAX_EVENT / (1024 * 1024)
            ));
        }
        Ok(events)
    }
}

/// Where the first blank line is: (its start, its length).
fn boundary(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buffer.len() {
        if buffer[i] == b'\n' && buffer[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buffer[i] == b'\n' && buffer[i + 1] == b'\r' && buffer.get(i + 2) == Some(&b'\n') {
            return Some((i, 3));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_are_read_whole() {
        let stream =
            b"data: {\"a\":1}\n\n: comment\n\nevent: x\ndata: one\ndata: two\r\n\r\ndata: {\"b\":";
        for split in 0..stream.len() {
            let mut reader = Reader::default();
            let mut got = reader.push(&stream[..split]).unwrap();
            got.extend(reader.push(&stream[split..]).unwrap());
            assert_eq!(got, vec!["{\"a\":1}", "one\ntwo"], "split at {split}");
        }
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut reader = Reader::default();
        let chunk = vec![b'x'; 1024 * 1024];
        let mut result = Ok(Vec::new());
        for _ in 0..9 {
            result = reader.push(&chunk);
        }
        assert!(result.unwrap_err().contains("more than 8 MiB"));
    }
}
