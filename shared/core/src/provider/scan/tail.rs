//! Reading a JSON object's last members backwards, from its closing brace,
//! for as long as their values are scalars (see the module docs).

use super::{is_space, Node, State, MAX_DIRECT_MEMBERS, WORDS};
use std::borrow::Cow;

/// Takes the wanted top-level scalars among the last members of the
/// object `body` holds; stops at the first member it cannot read cheaply
/// (a value that is an object or an array) or that is not well formed.
pub(super) fn read<'b>(body: &'b [u8], root: &Node, state: &mut State<'_, 'b>) {
    let mut at = Cursor { body, end: body.len() };
    if at.back_past_space() != Some(b'}') {
        return;
    }
    at.end -= 1;
    for _ in 0..MAX_DIRECT_MEMBERS {
        let Some(value) = at.scalar() else { return };
        if at.back_past_space() != Some(b':') {
            return;
        }
        at.end -= 1;
        at.back_past_space();
        let Some(Some(name)) = at.string() else { return };
        if let Some(child) = root.child(&name) {
            // A member on a longer wanted path has no value here: the
            // forward walk reads it and says so.
            if child.children.is_empty() {
                state.set(child.slot, value);
            }
        }
        match at.back_past_space() {
            Some(b',') => at.end -= 1,
            _ => return,
        }
    }
}

/// The bytes before `end` are still to be read, backwards.
struct Cursor<'b> {
    body: &'b [u8],
    end: usize,
}

impl<'b> Cursor<'b> {
    /// Moves back over whitespace; the byte before the new end.
    fn back_past_space(&mut self) -> Option<u8> {
        while self.end > 0 && is_space(self.body[self.end - 1]) {
            self.end -= 1;
        }
        self.end.checked_sub(1).map(|i| self.body[i])
    }

    /// The scalar that ends here, as the forward walk renders it (`None`
    /// for null and empty strings); `None` when it is not a scalar.
    fn scalar(&mut self) -> Option<Option<Cow<'b, str>>> {
        match self.back_past_space()? {
            b'"' => self.string(),
            b if b.is_ascii_alphanumeric() => {
                let end = self.end;
                while self.end > 0
                    && matches!(self.body[self.end - 1], b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'+' | b'-' | b'.')
                {
                    self.end -= 1;
                }
                let token = &self.body[self.end..end];
                // The words as they stand; anything else must be a number,
                // taken as serde_json prints it (`12.50` is `12.5`).
                if let Some((_, value)) = WORDS.into_iter().find(|(word, _)| token == word.as_bytes()) {
                    return Some(value.map(Cow::Borrowed));
                }
                match serde_json::from_slice::<serde_json::Value>(token).ok()? {
                    serde_json::Value::Number(n) => Some(Some(Cow::Owned(n.to_string()))),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The string whose closing quote is the byte before the end,
    /// unescaped (borrowed when it holds no escape); `None` when it is
    /// not a well-formed JSON string.
    fn string(&mut self) -> Option<Option<Cow<'b, str>>> {
        let close = self.end.checked_sub(1)?;
        if self.body[close] != b'"' || escaped(self.body, close) {
            return None;
        }
        // The opening quote is the first one before it that no backslash
        // escapes: inside a JSON string every quote is escaped.
        let mut open = close;
        loop {
            open = self.body[..open].iter().rposition(|&b| b == b'"')?;
            if !escaped(self.body, open) {
                break;
            }
        }
        self.end = open;
        let inner = &self.body[open + 1..close];
        let text = if inner.iter().all(|&b| b >= 0x20 && b != b'\\') {
            Cow::Borrowed(std::str::from_utf8(inner).ok()?)
        } else {
            Cow::Owned(serde_json::from_slice::<String>(&self.body[open..=close]).ok()?)
        };
        Some((!text.is_empty()).then_some(text))
    }
}

/// Whether the byte at `at` follows an odd number of backslashes.
fn escaped(body: &[u8], at: usize) -> bool {
    body[..at].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}
