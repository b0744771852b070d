//! Terminal WebSocket (`/ws/term/{id}`) messages: binary frames, each one
//! postcard-encoded enum value. Terminal bytes travel as raw bytes, never as
//! JSON strings or base64.
//!
//! How a session ends, as the browser sees it: a `Notice` followed by a clean
//! close ends the tab (an `Info` notice means the process exited, any other
//! level means it failed, with the notice's text); close codes 1008 and
//! 4000-4999 also end it. Any other close is a network problem: the tab asks
//! for a new ticket (`attach_terminal`) and resumes from its next `seq`; a
//! `NotFound` answer means the session is gone. A newer tab attaching to the
//! same session replaces the older one with the notice "replaced by another tab".
use serde::{Deserialize, Serialize};

/// Largest frame a client may send on a terminal socket.
pub const MAX_CLIENT_FRAME_BYTES: usize = 64 * 1024;
/// Largest output chunk the server puts in one frame.
pub const MAX_OUTPUT_CHUNK: usize = 64 * 1024;
/// Widest terminal accepted, in columns: a 4K screen at a small font is about
/// 400 columns; the server allocates the screen model at this size at once.
pub const MAX_COLS: u16 = 500;
/// Tallest terminal accepted, in rows (a 4K portrait screen at a small font).
pub const MAX_ROWS: u16 = 200;

/// Whether `cols` × `rows` is a terminal size the server accepts (at least
/// 1 × 1, at most [`MAX_COLS`] × [`MAX_ROWS`]): the one check for opening
/// and resizing.
pub fn size_ok(cols: u16, rows: u16) -> bool {
    (1..=MAX_COLS).contains(&cols) && (1..=MAX_ROWS).contains(&rows)
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// Keystrokes or pasted bytes for the terminal.
    Input(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The browser terminal's size changed.
    Resize { cols: u16, rows: u16 },
    /// The browser has too much unrendered output: stop sending until `Resume`.
    Pause,
    /// The browser caught up: send again.
    Resume,
    /// First frame after (re)attaching: send output from stream offset `seq`
    /// (0 for a fresh tab). If it is no longer buffered a snapshot comes instead.
    ResumeFrom { seq: u64 },
    /// A line typed into "send to all": input like `Input`, and the session's
    /// recording gets a marker with its text.
    InputToAll(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// How serious a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeLevel {
    /// Informational (connected, reattached).
    Info,
    /// Something the user should act on (slow connection, replaced by another tab).
    Warning,
    /// The session failed (unreachable, auth failed, host key changed).
    Error,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// Terminal output starting at stream offset `seq` (bytes since session start).
    Output {
        seq: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The client's offset was no longer buffered: reset the screen and write
    /// `data` (a rendering of the current screen); the stream continues at `seq`.
    Snapshot {
        seq: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The remote process ended.
    Exit {
        /// Exit status, if the process reported one.
        code: Option<u32>,
        /// Signal name, if it was killed by a signal.
        signal: Option<String>,
    },
    /// A message for the user, shown in the terminal (not part of the stream).
    Notice { level: NoticeLevel, text: String },
    /// The session's terminal size (watchers only: their view follows the owner's).
    Size { cols: u16, rows: u16 },
    /// Who is watching the session now (owner only; sent whenever it changes,
    /// an empty list once nobody is).
    Watchers(Vec<String>),
    /// What became of an `InputToAll` line: `None` sent to the shell,
    /// `Some(reason)` not (a guard rule blocked it, or the session is frozen).
    Broadcast { blocked: Option<String> },
}

/// [`ServerFrame`] decoded in place: the terminal bytes borrow the received
/// frame, so the browser hands them to xterm.js without copying them into a
/// `Vec` first. Same variants in the same order (postcard encodes the index).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum ServerFrameView<'a> {
    /// See [`ServerFrame::Output`].
    Output {
        seq: u64,
        #[serde(borrow)]
        data: &'a [u8],
    },
    /// See [`ServerFrame::Snapshot`].
    Snapshot {
        seq: u64,
        #[serde(borrow)]
        data: &'a [u8],
    },
    /// See [`ServerFrame::Exit`].
    Exit {
        code: Option<u32>,
        signal: Option<String>,
    },
    /// See [`ServerFrame::Notice`].
    Notice { level: NoticeLevel, text: String },
    /// See [`ServerFrame::Size`].
    Size { cols: u16, rows: u16 },
    /// See [`ServerFrame::Watchers`].
    Watchers(Vec<String>),
    /// See [`ServerFrame::Broadcast`].
    Broadcast { blocked: Option<String> },
}

impl<'a> ServerFrameView<'a> {
    /// Decodes a binary frame without copying its terminal bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FrameError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

/// Where `part` (terminal bytes a [`ServerFrameView`] borrowed from `frame`)
/// lies in `frame`, so the browser can pass that range of the received
/// buffer on without copying; `None` if `part` is not inside `frame`.
pub fn span_in(frame: &[u8], part: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(frame.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= frame.len()).then_some(start..end)
}

/// `ClientFrame::Input` borrowing its bytes, for encoding without a copy.
/// Its variant index must stay `Input`'s (0); a test checks the bytes match.
#[derive(Serialize)]
enum InputFrame<'a> {
    Input(#[serde(with = "serde_bytes")] &'a [u8]),
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed terminal frame: {0}")]
pub struct FrameError(#[from] postcard::Error);

impl ClientFrame {
    /// Encodes for the wire.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }
    /// Encodes `ClientFrame::Input(data)` without copying `data` into a
    /// frame first (the keystroke path).
    pub fn encode_input(data: &[u8]) -> Vec<u8> {
        postcard::to_allocvec(&InputFrame::Input(data)).unwrap_or_default()
    }
    /// Decodes a binary frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

impl ServerFrame {
    /// Encodes for the wire.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }
    /// Decodes a binary frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_round_trip() {
        for f in [
            ClientFrame::Input(b"ls -la\r".to_vec()),
            ClientFrame::Resize {
                cols: 120,
                rows: 40,
            },
            ClientFrame::Pause,
            ClientFrame::Resume,
            ClientFrame::ResumeFrom { seq: 1 << 40 },
        ] {
            assert_eq!(ClientFrame::decode(&f.encode()).unwrap(), f);
        }
    }

    #[test]
    fn server_frames_round_trip() {
        for f in [
            ServerFrame::Output {
                seq: 7,
                data: vec![0, 255, 27, b'['],
            },
            ServerFrame::Snapshot {
                seq: 9,
                data: b"\x1b[H".to_vec(),
            },
            ServerFrame::Exit {
                code: Some(130),
                signal: None,
            },
            ServerFrame::Notice {
                level: NoticeLevel::Error,
                text: "host key changed".into(),
            },
        ] {
            assert_eq!(ServerFrame::decode(&f.encode()).unwrap(), f);
        }
    }

    #[test]
    fn input_encoded_in_place_matches_the_frame() {
        for data in [&b""[..], b"a", b"\x1b[A", &[0xC3, 0xA9], &[7u8; 300]] {
            let bytes = ClientFrame::encode_input(data);
            assert_eq!(bytes, ClientFrame::Input(data.to_vec()).encode());
            assert_eq!(
                ClientFrame::decode(&bytes).unwrap(),
                ClientFrame::Input(data.to_vec())
            );
        }
    }

    #[test]
    fn views_decode_every_server_frame() {
        let frames = [
            ServerFrame::Output {
                seq: 1 << 33,
                data: vec![0, 255, 27, b'['],
            },
            ServerFrame::Snapshot {
                seq: 9,
                data: b"\x1b[H".to_vec(),
            },
            ServerFrame::Exit {
                code: None,
                signal: Some("KILL".into()),
            },
            ServerFrame::Notice {
                level: NoticeLevel::Warning,
                text: "replaced by another tab".into(),
            },
        ];
        for f in frames {
            let bytes = f.encode();
            let view = ServerFrameView::decode(&bytes).unwrap();
            let same = match (&f, &view) {
                (
                    ServerFrame::Output { seq, data },
                    ServerFrameView::Output { seq: s, data: d },
                )
                | (
                    ServerFrame::Snapshot { seq, data },
                    ServerFrameView::Snapshot { seq: s, data: d },
                ) => seq == s && data.as_slice() == *d,
                (
                    ServerFrame::Exit { code, signal },
                    ServerFrameView::Exit { code: c, signal: g },
                ) => code == c && signal == g,
                (
                    ServerFrame::Notice { level, text },
                    ServerFrameView::Notice { level: l, text: t },
                ) => level == l && text == t,
                _ => false,
            };
            assert!(same, "{f:?} decoded as {view:?}");
            // The bytes are borrowed from the frame, not copied.
            if let ServerFrameView::Output { data, .. } | ServerFrameView::Snapshot { data, .. } =
                view
            {
                let span = span_in(&bytes, data).expect("borrowed from the frame");
                assert_eq!(&bytes[span.clone()], data);
                assert_eq!(span.end, bytes.len());
                assert_eq!(span_in(&bytes, &data[1..]), Some(span.start + 1..span.end));
            }
        }
        assert!(ServerFrameView::decode(&[0xFF, 0x01]).is_err());
    }

    #[test]
    fn a_slice_of_another_buffer_has_no_span() {
        let frame = vec![1u8; 16];
        let other = vec![1u8; 16];
        let (low, high) = if frame.as_ptr() < other.as_ptr() {
            (&frame, &other)
        } else {
            (&other, &frame)
        };
        assert_eq!(span_in(high, &low[..4]), None);
        assert_eq!(span_in(low, &high[..4]), None);
        assert_eq!(
            span_in(&frame[..8], &frame[4..12]),
            None,
            "runs past the end"
        );
        assert_eq!(span_in(&frame, &frame[..0]), Some(0..0));
    }

    #[test]
    fn output_bytes_are_raw_not_text() {
        let data = vec![0xABu8; 1000];
        let enc = ServerFrame::Output {
            seq: 0,
            data: data.clone(),
        }
        .encode();
        // tag + seq + length prefix + raw bytes: no base64/JSON inflation
        assert!(enc.len() <= data.len() + 4);
        assert!(enc.windows(1000).any(|w| w == &data[..]));
    }

    #[test]
    fn sizes_are_bounded() {
        assert!(size_ok(80, 24) && size_ok(MAX_COLS, MAX_ROWS));
        assert!(!size_ok(0, 24) && !size_ok(80, 0));
        assert!(!size_ok(MAX_COLS + 1, 24) && !size_ok(80, MAX_ROWS + 1));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(ClientFrame::decode(&[0xFF, 0xFF, 0xFF]).is_err());
        assert!(ClientFrame::decode(&[]).is_err());
    }
}
