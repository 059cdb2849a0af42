//! Reading a JSON object's first members forwards, for as long as they are
//! plain (see the module docs).

use super::{is_space, Node, State, MAX_DIRECT_MEMBERS, WORDS};
use std::borrow::Cow;

/// Reads the object's leading plain members, and its end when it meets
/// an unwanted container; true when that settles every value (the scan
/// is over), false when the walk must read the body (from the start:
/// what was found here is found again, in the same order).
pub(super) fn read<'b>(body: &'b [u8], root: &Node, state: &mut State<'_, 'b>) -> bool {
    if root.slot.is_some() {
        return false;
    }
    let mut at = Cursor { body, at: 0 };
    if at.past_space() != Some(b'{') {
        return false;
    }
    at.at += 1;
    for _ in 0..MAX_DIRECT_MEMBERS {
        at.past_space();
        let Some(name) = at.plain_string() else { return false };
        if at.past_space() != Some(b':') {
            return false;
        }
        at.at += 1;
        let wanted = root.child(name);
        match at.past_space() {
            Some(b'{' | b'[') => {
                // The walk descends into a wanted container; an unwanted
                // one is where it would read the end first: so do we.
                if wanted.is_some() {
                    return false;
                }
                state.tail_read = true;
                super::tail::read(body, root, state);
                return state.done();
            }
            _ => {
                let Some(value) = at.scalar() else { return false };
                if let Some(child) = wanted {
                    state.set(child.slot, value);
                }
            }
        }
        if state.done() {
            return true;
        }
        match at.past_space() {
            Some(b',') => at.at += 1,
            // The end of the object, or not JSON: the walk decides.
            _ => return false,
        }
    }
    false
}

/// The bytes from `at` on are still to be read.
struct Cursor<'b> {
    body: &'b [u8],
    at: usize,
}

impl<'b> Cursor<'b> {
    /// Moves past whitespace; the byte there.
    fn past_space(&mut self) -> Option<u8> {
        while self.at < self.body.len() && is_space(self.body[self.at]) {
            self.at += 1;
        }
        self.body.get(self.at).copied()
    }

    /// A string without escapes or control characters, as it stands;
    /// `None` for anything else (the walk reads it).
    fn plain_string(&mut self) -> Option<&'b str> {
        if self.body.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let len = self.body[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if self.body[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        std::str::from_utf8(&self.body[start..start + len]).ok()
    }

    /// A plain scalar as the walk renders it (`None` for null and empty
    /// strings); `None` when the value is not plain: a number that is
    /// not a plain integer the walk would print the same, an escape, or
    /// anything that is not JSON.
    fn scalar(&mut self) -> Option<Option<Cow<'b, str>>> {
        match self.body.get(self.at)? {
            b'"' => self.plain_string().map(|s| (!s.is_empty()).then_some(Cow::Borrowed(s))),
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                let digits = usize::from(self.body[start] == b'-');
                let len = self.body[start + digits..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let text = &self.body[start..start + digits + len];
                // One to 18 digits, no leading zero, not `-0`: exactly
                // the integers serde_json prints back as they are.
                let plain = (1..=18).contains(&len) && (len == 1 || text[digits] != b'0') && text != b"-0";
                self.at = start + digits + len;
                if !plain || !self.ends_value() {
                    return None;
                }
                std::str::from_utf8(text).ok().map(|t| Some(Cow::Borrowed(t)))
            }
            _ => {
                let rest = &self.body[self.at..];
                let (word, value) = WORDS.into_iter().find(|(word, _)| rest.starts_with(word.as_bytes()))?;
                self.at += word.len();
                self.ends_value().then_some(value.map(Cow::Borrowed))
            }
        }
    }

    /// Whether what follows a number or a word can end a value (so
    /// `1.5`, `1e3` and `truex` are left to the walk).
    fn ends_value(&self) -> bool {
        match self.body.get(self.at) {
            Some(&b) => b == b',' || b == b'}' || is_space(b),
            None => true,
        }
    }
}
