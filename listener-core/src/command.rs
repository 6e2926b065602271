//! The listener's command letters (semantics §2 and §7).

use std::fmt;

/// What happened to an object, as the classic API and the transaction log spell it.
///
/// `Display` renders the single letter UCS uses (`a`, `m`, `d`, `r`, `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    /// `a`: the object was added (or is the new half of a rename/move).
    Add,
    /// `m`: the object was modified.
    Modify,
    /// `d`: the object was deleted (or left the module's filter).
    Delete,
    /// `r`: first half of a rename/move; the object is leaving its old DN.
    Rename,
    /// `n`: the object is delivered by a module's initialization.
    Initialize,
}

impl Command {
    /// The command's letter.
    pub const fn letter(self) -> char {
        match self {
            Command::Add => 'a',
            Command::Modify => 'm',
            Command::Delete => 'd',
            Command::Rename => 'r',
            Command::Initialize => 'n',
        }
    }

    /// Parses a command letter; `None` for anything else.
    pub const fn from_letter(letter: char) -> Option<Command> {
        Some(match letter {
            'a' => Command::Add,
            'm' => Command::Modify,
            'd' => Command::Delete,
            'r' => Command::Rename,
            'n' => Command::Initialize,
            _ => return None,
        })
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_round_trip() {
        for c in [
            Command::Add,
            Command::Modify,
            Command::Delete,
            Command::Rename,
            Command::Initialize,
        ] {
            assert_eq!(Command::from_letter(c.letter()), Some(c));
            assert_eq!(c.to_string(), c.letter().to_string());
        }
        assert_eq!(Command::from_letter('x'), None);
    }
}
