//! The UCS notifier wire protocol (semantics §3): framing, handshake, requests, replies.
//!
//! Text with `\n` line ends; a message is lines ended by an empty line. Framing is by
//! bytes, not by TCP reads: a request split over several reads, or several requests in
//! one read, both work (UDN needs each request inside one read).

use std::fmt::Write as _;

/// A line longer than this closes the connection (UDN's hard limit).
pub(crate) const MAX_LINE: usize = 8 * 1024;
/// The protocol versions we speak.
pub(crate) const MIN_VERSION: u32 = 2;
/// The newest protocol version we speak.
pub(crate) const MAX_VERSION: u32 = 3;
/// Our batch capability: `GET_DNS <from> <max>` answers up to `max` lines `<id> <dn>
/// <cmd>` from `from` on, as soon as at least one exists. Offered only to clients that
/// ask for it in their handshake.
pub(crate) const CAP_GET_DNS: &str = "GET_DNS";
/// Our identity capability: a client that asks for `LOG_ID` is answered `LOG_ID=<id>`,
/// the random name of the notifier's ID space (see the transaction log), so a listener
/// can refuse a notifier whose IDs are not the ones it followed.
pub(crate) const CAP_LOG_ID: &str = "LOG_ID";

/// What is wrong with what a client sent; the connection is closed with a log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A line exceeds [`MAX_LINE`].
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A line is not UTF-8.
    #[error("line is not UTF-8")]
    NotUtf8,
    /// The handshake lacks `Version:`.
    #[error("handshake without a `Version:` line: {0:?}")]
    NoVersion(String),
    /// A request lacks `MSGID:`.
    #[error("request does not start with `MSGID: <n>`: {0:?}")]
    NoMsgid(String),
    /// A number does not parse.
    #[error("not a number: {0:?}")]
    BadNumber(String),
    /// A command we do not know (or did not offer).
    #[error("unknown request {0:?}")]
    UnknownRequest(String),
    /// A command with the wrong arguments.
    #[error("request {command} needs {expected}, got {got:?}")]
    BadArgument {
        /// The command.
        command: &'static str,
        /// What it takes.
        expected: &'static str,
        /// What it got.
        got: String,
    },
    /// A message that is not two lines.
    #[error("message has {0} lines; a request is `MSGID: <n>` and one command line")]
    BadShape(usize),
}

/// Splits a byte stream into messages (lists of lines up to an empty line).
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned for a newline.
    scanned: usize,
    lines: Vec<String>,
}

impl Framer {
    /// Adds bytes as they came from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if the bytes so far hold one. Empty lines between
    /// messages are skipped.
    pub fn next_message(&mut self) -> Result<Option<Vec<String>>, ProtocolError> {
        loop {
            let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_LINE {
                    return Err(ProtocolError::LineTooLong);
                }
                return Ok(None);
            };
            let end = self.scanned + pos;
            if end > MAX_LINE {
                return Err(ProtocolError::LineTooLong);
            }
            let line = std::str::from_utf8(&self.buf[..end])
                .map_err(|_| ProtocolError::NotUtf8)?
                .trim_end_matches('\r')
                .to_owned();
            self.buf.drain(..=end);
            self.scanned = 0;
            if line.is_empty() {
                if !self.lines.is_empty() {
                    return Ok(Some(std::mem::take(&mut self.lines)));
                }
            } else {
                self.lines.push(line);
            }
        }
    }
}

/// A client's handshake: the protocol version it speaks and the capabilities it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Handshake {
    /// The protocol version.
    pub version: u32,
    /// Capabilities asked for (client) or granted (server).
    pub capabilities: Vec<String>,
}

impl Handshake {
    /// Reads a handshake message.
    pub(crate) fn parse(lines: &[String]) -> Result<Handshake, ProtocolError> {
        let mut version = None;
        let mut capabilities = Vec::new();
        for line in lines {
            if let Some(v) = header(line, "Version") {
                version = Some(number(v)?);
            } else if let Some(c) = header(line, "Capabilities") {
                capabilities = c.split_whitespace().map(str::to_owned).collect();
            }
        }
        let version = version.ok_or_else(|| ProtocolError::NoVersion(lines.join("\\n")))?;
        Ok(Handshake {
            version: u32::try_from(version)
                .map_err(|_| ProtocolError::BadNumber(version.to_string()))?,
            capabilities,
        })
    }

    /// Renders a handshake message (what the server answers, or a client sends).
    pub(crate) fn render(&self) -> String {
        format!(
            "Version: {}\nCapabilities: {}\n\n",
            self.version,
            self.capabilities.join(" ")
        )
    }
}

fn header<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (key, value) = line.split_once(':')?;
    key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
}

fn number(text: &str) -> Result<u64, ProtocolError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProtocolError::BadNumber(text.to_owned()));
    }
    text.parse()
        .map_err(|_| ProtocolError::BadNumber(text.to_owned()))
}

/// One request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// The current last transaction ID.
    GetId,
    /// The current schema ID.
    GetSchemaId,
    /// Keepalive; answered `OKAY`.
    Alive,
    /// Protocol 2: the transaction `<id>` as `<id> <dn> <cmd>`, once it exists.
    GetDn(u64),
    /// Protocol 3: the current last ID, once it is at least `<id>`.
    WaitId(u64),
    /// Our capability: up to `max` transactions from `from` on, once `from` exists.
    GetDns {
        /// The first ID wanted.
        from: u64,
        /// At most this many.
        max: u64,
    },
}

impl Request {
    /// The ID this request waits for, if it blocks.
    pub(crate) fn waits_for(&self) -> Option<u64> {
        match *self {
            Request::GetDn(id) | Request::WaitId(id) => Some(id),
            Request::GetDns { from, .. } => Some(from),
            Request::GetId | Request::GetSchemaId | Request::Alive => None,
        }
    }
}

/// A request with its message ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message {
    /// The client's message ID, echoed in the reply.
    pub msgid: u64,
    /// What is asked.
    pub request: Request,
}

impl Message {
    /// Reads a request message.
    pub(crate) fn parse(lines: &[String]) -> Result<Message, ProtocolError> {
        let [first, command] = lines else {
            return Err(ProtocolError::BadShape(lines.len()));
        };
        let msgid = header(first, "MSGID").ok_or_else(|| ProtocolError::NoMsgid(first.clone()))?;
        let msgid = number(msgid)?;
        let mut words = command.split_whitespace();
        let name = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        let arg = |command: &'static str, expected: &'static str| match args.as_slice() {
            [one] => number(one),
            _ => Err(ProtocolError::BadArgument {
                command,
                expected,
                got: args.join(" "),
            }),
        };
        let none = |command: &'static str, request: Request| {
            if args.is_empty() {
                Ok(request)
            } else {
                Err(ProtocolError::BadArgument {
                    command,
                    expected: "no argument",
                    got: args.join(" "),
                })
            }
        };
        let request = match name {
            "GET_ID" => none("GET_ID", Request::GetId)?,
            "GET_SCHEMA_ID" => none("GET_SCHEMA_ID", Request::GetSchemaId)?,
            "ALIVE" => none("ALIVE", Request::Alive)?,
            "GET_DN" => Request::GetDn(arg("GET_DN", "one ID")?),
            "WAIT_ID" => Request::WaitId(arg("WAIT_ID", "one ID")?),
            "GET_DNS" => match args.as_slice() {
                [from, max] => Request::GetDns {
                    from: number(from)?,
                    max: number(max)?,
                },
                _ => {
                    return Err(ProtocolError::BadArgument {
                        command: "GET_DNS",
                        expected: "<from> <max>",
                        got: args.join(" "),
                    });
                }
            },
            other => return Err(ProtocolError::UnknownRequest(other.to_owned())),
        };
        Ok(Message { msgid, request })
    }

    /// Renders the request as a client sends it.
    pub(crate) fn render(&self) -> String {
        let command = match self.request {
            Request::GetId => "GET_ID".to_owned(),
            Request::GetSchemaId => "GET_SCHEMA_ID".to_owned(),
            Request::Alive => "ALIVE".to_owned(),
            Request::GetDn(id) => format!("GET_DN {id}"),
            Request::WaitId(id) => format!("WAIT_ID {id}"),
            Request::GetDns { from, max } => format!("GET_DNS {from} {max}"),
        };
        format!("MSGID: {}\n{command}\n\n", self.msgid)
    }
}

/// A reply: `MSGID: <n>\n<payload>\n\n`.
pub(crate) fn reply(msgid: u64, payload: &str) -> String {
    let mut out = String::with_capacity(payload.len() + 24);
    let _ = write!(out, "MSGID: {msgid}\n{payload}\n\n");
    out
}

/// UDN's text form of a transaction, `<id> <dn> <cmd>`. A line break inside a DN (legal
/// unescaped in RFC 4514) is written as its `\0a` escape, which names the same DN, so it
/// cannot break the line-based protocol.
pub(crate) fn transaction_line(id: u64, dn: &str, command: char) -> String {
    let mut line = format!("{id} ");
    for c in dn.chars() {
        match c {
            '\n' => line.push_str("\\0a"),
            '\r' => line.push_str("\\0d"),
            c => line.push(c),
        }
    }
    line.push(' ');
    line.push(command);
    line
}

/// Splits `<id> <dn> <cmd>` by UDN's rule: ID up to the first space, command after the
/// last space, the DN in between (it may contain spaces).
pub(crate) fn parse_transaction_line(line: &str) -> Option<(u64, &str, char)> {
    let (id, rest) = line.split_once(' ')?;
    let (dn, command) = rest.rsplit_once(' ')?;
    let mut chars = command.chars();
    let (Some(command), None) = (chars.next(), chars.next()) else {
        return None;
    };
    Some((number(id).ok()?, dn, command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn frames_split_and_coalesced_messages() {
        let mut f = Framer::default();
        f.push(b"MSGID: 1\nGE");
        assert_eq!(f.next_message().unwrap(), None);
        f.push(b"T_ID\n");
        assert_eq!(f.next_message().unwrap(), None);
        f.push(b"\nMSGID: 2\nALIVE\n\n\nMSGID: 3\r\nWAIT_ID 5\r\n\r\n");
        assert_eq!(
            f.next_message().unwrap(),
            Some(lines(&["MSGID: 1", "GET_ID"]))
        );
        assert_eq!(
            f.next_message().unwrap(),
            Some(lines(&["MSGID: 2", "ALIVE"]))
        );
        assert_eq!(
            f.next_message().unwrap(),
            Some(lines(&["MSGID: 3", "WAIT_ID 5"]))
        );
        assert_eq!(f.next_message().unwrap(), None);
    }

    #[test]
    fn an_overlong_line_is_an_error_even_before_its_end() {
        let mut f = Framer::default();
        f.push(&vec![b'x'; MAX_LINE + 1]);
        assert_eq!(f.next_message(), Err(ProtocolError::LineTooLong));
        let mut f = Framer::default();
        f.push(&vec![b'x'; MAX_LINE]);
        f.push(b"\n\n");
        assert!(f.next_message().unwrap().is_some());
    }

    #[test]
    fn handshakes() {
        let h = Handshake::parse(&lines(&["Version: 3", "Capabilities: "])).unwrap();
        assert_eq!((h.version, h.capabilities.len()), (3, 0));
        assert_eq!(h.render(), "Version: 3\nCapabilities: \n\n");
        let h = Handshake::parse(&lines(&["Capabilities: GET_DNS X", "Version: 2"])).unwrap();
        assert_eq!(h.capabilities, ["GET_DNS", "X"]);
        assert!(Handshake::parse(&lines(&["Capabilities: "])).is_err());
        assert!(Handshake::parse(&lines(&["Version: three"])).is_err());
    }

    #[test]
    fn requests_round_trip() {
        for request in [
            Request::GetId,
            Request::GetSchemaId,
            Request::Alive,
            Request::GetDn(7),
            Request::WaitId(8),
            Request::GetDns { from: 9, max: 100 },
        ] {
            let m = Message { msgid: 42, request };
            let mut f = Framer::default();
            f.push(m.render().as_bytes());
            let parsed = Message::parse(&f.next_message().unwrap().unwrap()).unwrap();
            assert_eq!(parsed, m);
        }
    }

    #[test]
    fn bad_requests_are_errors() {
        for bad in [
            &["MSGID: x", "GET_ID"][..],
            &["MSGID: 1", "GET_DN"],
            &["MSGID: 1", "GET_DN -1"],
            &["MSGID: 1", "GET_DN 99999999999999999999999"],
            &["MSGID: 1", "WAIT_ID 1 2"],
            &["MSGID: 1", "FROB"],
            &["GET_ID"],
            &["MSGID: 1", "GET_ID", "GET_ID"],
            &["ID: 1", "GET_ID"],
        ] {
            assert!(Message::parse(&lines(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn transaction_lines_follow_udn_rules() {
        assert_eq!(transaction_line(5, "cn=a b,dc=x", 'm'), "5 cn=a b,dc=x m");
        assert_eq!(
            parse_transaction_line("5 cn=a b,dc=x m"),
            Some((5, "cn=a b,dc=x", 'm'))
        );
        assert_eq!(transaction_line(1, "cn=a\nb", 'a'), "1 cn=a\\0ab a");
        assert_eq!(parse_transaction_line("5 cn=x mm"), None);
        assert_eq!(parse_transaction_line("x cn=x m"), None);
    }
}
