//! Reads the few values a provider needs (event id, type) out of a JSON body
//! without building a document tree and without reading past them.
//!
//! The pointers are compiled once into a tree of path segments; the scan
//! walks the body with serde_json's parser, descends only into the members
//! on a wanted path, skips every other value with `IgnoredAny`, and stops as
//! soon as every wanted value has been seen. For a webhook whose `id` and
//! `type` come first this costs the same for 1 KiB and 1 MiB. A body that is
//! not JSON up to that point is rejected; what follows is not read here (see
//! [`crate::payload`] for where it is).
//!
//! Senders that put the type after the data (Stripe: `id`, `object`, ...,
//! `data`, ..., `type`) would make that walk read the whole body. So the
//! first time the walk is about to skip a top-level member it does not
//! want, it first reads the object's last members backwards from its closing
//! brace ([`tail`]): as long as they are scalars (a string, number, `true`,
//! `false`, `null`), each is checked and, when wanted, taken. If that leaves
//! nothing to find, the walk stops there and the data in the middle is never
//! read: the signature has already proved the body is the sender's, and the
//! processor parses it whole before any handler runs. A member named twice
//! is a document JSON leaves undefined; the value read is then one of them.
//!
//! Before any of that, the object's first members are read directly
//! ([`head`]), while their names and values are plain (a name without
//! escapes, a string without escapes, an integer, `true`, `false`, `null`),
//! each checked as strictly as the walk would: the usual webhook, whose id
//! and type come first, is read without serde's machinery at all. At the
//! first value that is an object or an array, an unwanted one gets the same
//! read from the end the walk would give it; whatever is not settled then
//! goes to the walk, from the start.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::fmt;

mod head;
mod tail;

/// JSON's three words and how the walk renders each (`null` is absent,
/// as a missing member is): both readers take them as they stand.
const WORDS: [(&str, Option<&str>); 3] = [("true", Some("true")), ("false", Some("false")), ("null", None)];

/// At most this many members are read directly, from either end of the
/// object: enough for every sender's leading id and type and trailing
/// metadata, and a bound on a body of many scalars.
const MAX_DIRECT_MEMBERS: usize = 64;

/// JSON's whitespace, which both readers step over.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Why a body could not be scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("body is not valid JSON")]
    NotJson,
    #[error("body is not a JSON object")]
    NotObject,
}

/// A compiled set of JSON pointers (RFC 6901).
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    pointers: Vec<String>,
    root: Node,
    /// When the scan may stop: every group resolved. A group is slots in
    /// order of preference (first present wins); it is resolved once one is
    /// seen present after every slot before it was seen absent.
    groups: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Index of the pointer that ends here.
    slot: Option<usize>,
    /// Members (or array indexes, as decimal text) on a wanted path.
    children: Vec<(String, Node)>,
}

impl Node {
    /// The member `name` when it is on a wanted path.
    fn child(&self, name: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|(segment, _)| segment.as_str() == name)
            .map(|(_, child)| child)
    }
}

impl Lookup {
    /// Compiles pointers such as `/id` or `/data/object/id`; slot `i` of the
    /// result of [`Lookup::read`] is `pointers[i]`.
    pub fn new(pointers: &[String]) -> Self {
        let groups: Vec<Vec<String>> = pointers.iter().map(|p| vec![p.clone()]).collect();
        Self::grouped(&groups)
    }

    /// Compiles groups of alternatives: the scan stops once, in every group,
    /// the first present pointer is known (an event type read from `type`
    /// or else `event` needs no more reading once `type` is found). Slots
    /// are the distinct pointers in order of first mention.
    pub fn grouped(groups: &[Vec<String>]) -> Self {
        let mut pointers: Vec<String> = Vec::new();
        for p in groups.iter().flatten() {
            if !pointers.contains(p) {
                pointers.push(p.clone());
            }
        }
        let groups = groups
            .iter()
            .filter(|g| !g.is_empty())
            .map(|g| g.iter().filter_map(|p| pointers.iter().position(|q| q == p)).collect())
            .collect();
        let mut root = Node::default();
        for (slot, pointer) in pointers.iter().enumerate() {
            let mut node = &mut root;
            for segment in segments(pointer) {
                let at = match node.children.iter().position(|(s, _)| *s == segment) {
                    Some(at) => at,
                    None => {
                        node.children.push((segment, Node::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[at].1;
            }
            node.slot.get_or_insert(slot);
        }
        Self { pointers, root, groups }
    }

    /// The slot of `pointer` in what [`Lookup::read`] returns.
    pub fn slot(&self, pointer: &str) -> Option<usize> {
        self.pointers.iter().position(|p| p == pointer)
    }

    /// The value at each pointer of a JSON object body, as text: strings as
    /// they are (borrowed from the body unless they hold escapes), numbers
    /// and booleans printed; `None` when absent, null, empty, an object or an
    /// array. Stops reading at the last value needed.
    pub fn read<'b>(&self, body: &'b [u8]) -> Result<Values<'b>, ScanError> {
        let mut state = State {
            values: smallvec::smallvec![None; self.pointers.len()],
            groups: &self.groups,
            stopped: false,
            not_object: false,
            body,
            tail_read: false,
        };
        if head::read(body, &self.root, &mut state) {
            return Ok(state.values.into_iter().map(Option::flatten).collect());
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        let outcome = NodeSeed {
            node: &self.root,
            state: &mut state,
            root: true,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        match outcome {
            _ if state.not_object => Err(ScanError::NotObject),
            Err(_) if !state.stopped => Err(ScanError::NotJson),
            _ => Ok(state.values.into_iter().map(Option::flatten).collect()),
        }
    }

    /// The same over a parsed value (form bodies, elements of a batch).
    pub fn read_value<'v>(&self, value: &'v Value) -> Values<'v> {
        self.pointers
            .iter()
            .map(|p| match value.pointer(p)? {
                Value::String(s) if !s.is_empty() => Some(Cow::Borrowed(s.as_str())),
                Value::Number(n) => Some(Cow::Owned(n.to_string())),
                Value::Bool(b) => Some(Cow::Owned(b.to_string())),
                _ => None,
            })
            .collect()
    }
}

/// Values a provider reads without an allocation: its id and type, and a
/// few more for a composite id or a type made of parts.
const INLINE_VALUES: usize = 4;

/// The value at each pointer of a [`Lookup`], in its order.
pub type Values<'b> = SmallVec<[Option<Cow<'b, str>>; INLINE_VALUES]>;

/// The unescaped segments of a pointer (`~1` is `/`, `~0` is `~`).
fn segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

struct State<'g, 'b> {
    /// `None` until seen; then the value, `Some(None)` when absent or not a scalar.
    values: SmallVec<[Option<Option<Cow<'b, str>>>; INLINE_VALUES]>,
    groups: &'g [Vec<usize>],
    /// The scan ended early on purpose (every value found).
    stopped: bool,
    not_object: bool,
    /// The whole body, for reading its last members backwards.
    body: &'b [u8],
    /// Whether the last members have been read (once per scan).
    tail_read: bool,
}

impl<'b> State<'_, 'b> {
    fn set(&mut self, slot: Option<usize>, value: Option<Cow<'b, str>>) {
        if let Some(slot) = slot {
            if self.values[slot].is_none() {
                self.values[slot] = Some(value.filter(|v| !v.is_empty()));
            }
        }
    }

    fn done(&self) -> bool {
        self.groups.iter().all(|group| {
            for &slot in group {
                match &self.values[slot] {
                    Some(Some(_)) => return true,
                    Some(None) => continue,
                    None => return false,
                }
            }
            true
        })
    }
}

struct NodeSeed<'s, 'g, 'b> {
    node: &'s Node,
    state: &'s mut State<'g, 'b>,
    root: bool,
}

impl<'b> DeserializeSeed<'b> for NodeSeed<'_, '_, 'b> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'b>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'b> NodeSeed<'_, '_, 'b> {
    fn scalar<E: de::Error>(self, text: Option<Cow<'b, str>>) -> Result<(), E> {
        if self.root {
            self.state.not_object = true;
            return Err(E::custom("not an object"));
        }
        self.state.set(self.node.slot, text);
        Ok(())
    }

    /// Ends the scan early: every value is found. The visitor returns
    /// without reading the rest of its object or array, so serde_json's
    /// check for the closing bracket fails (unless the container ends right
    /// there) and ends the parse; `read` knows the scan stopped on purpose.
    /// That costs one positioned syntax error, where a custom error would
    /// format its message into a new string and box it.
    fn stop<E: de::Error>(&mut self) -> Result<(), E> {
        self.state.stopped = true;
        Ok(())
    }
}

impl<'b> Visitor<'b> for NodeSeed<'_, '_, 'b> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'b str) -> Result<(), E> {
        self.scalar(Some(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(Some(Cow::Owned(v.to_string())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(Some(Cow::Owned(v.to_string())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(Some(Cow::Owned(v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(serde_json::Number::from_f64(v).map(|n| Cow::Owned(n.to_string())))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(Some(Cow::Owned(v.to_string())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar(None)
    }

    fn visit_map<A: MapAccess<'b>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.state.set(self.node.slot, None);
        if self.state.done() {
            return self.stop();
        }
        while let Some(child) = map.next_key_seed(KeySeed(&self.node.children))? {
            match child {
                Some(at) => map.next_value_seed(NodeSeed {
                    node: &self.node.children[at].1,
                    state: &mut *self.state,
                    root: false,
                })?,
                None => {
                    if self.root && !self.state.tail_read {
                        // About to skip a member: what is wanted may be at the end.
                        self.state.tail_read = true;
                        tail::read(self.state.body, self.node, self.state);
                        if self.state.done() {
                            return self.stop();
                        }
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if self.state.done() {
                return self.stop();
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'b>>(mut self, mut seq: A) -> Result<(), A::Error> {
        if self.root {
            self.state.not_object = true;
            return Err(de::Error::custom("not an object"));
        }
        self.state.set(self.node.slot, None);
        let mut index = 0usize;
        loop {
            let wanted = self
                .node
                .children
                .iter()
                .position(|(segment, _)| segment.parse::<usize>().ok() == Some(index));
            let more = match wanted {
                Some(at) => seq
                    .next_element_seed(NodeSeed {
                        node: &self.node.children[at].1,
                        state: &mut *self.state,
                        root: false,
                    })?
                    .is_some(),
                None => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            if self.state.done() {
                return self.stop();
            }
            index += 1;
        }
    }
}

/// Reads a member name and says which wanted child it is, if any.
struct KeySeed<'s>(&'s [(String, Node)]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|(segment, _)| segment == v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lookup(pointers: &[&str]) -> Lookup {
        Lookup::new(&pointers.iter().map(|p| p.to_string()).collect::<Vec<_>>())
    }

    fn read(pointers: &[&str], body: &str) -> Result<Vec<Option<String>>, ScanError> {
        let values = lookup(pointers).read(body.as_bytes())?;
        Ok(values.into_iter().map(|v| v.map(Cow::into_owned)).collect())
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn reads_top_level_and_nested_scalars() {
        let body = r#"{"id":"evt_1","n":12,"f":1.5,"ok":true,"data":{"object":{"id":"inv_9"},"items":[{"sku":"a"},{"sku":"b"}]}}"#;
        assert_eq!(
            read(
                &["/id", "/n", "/f", "/ok", "/data/object/id", "/data/items/1/sku"],
                body
            ),
            Ok(vec![
                some("evt_1"),
                some("12"),
                some("1.5"),
                some("true"),
                some("inv_9"),
                some("b")
            ])
        );
    }

    #[test]
    fn absent_null_empty_and_containers_are_none() {
        let body = r#"{"a":null,"b":"","c":{"x":1},"d":[1]}"#;
        assert_eq!(read(&["/a", "/b", "/c", "/d", "/zzz"], body), Ok(vec![None; 5]));
    }

    #[test]
    fn stops_after_the_last_value_needed() {
        // Everything after "type" is not JSON, and is not read.
        let body = r#"{"id":"e1","type":"t", this is not read"#;
        assert_eq!(read(&["/id", "/type"], body), Ok(vec![some("e1"), some("t")]));
        // A value that is not there makes the scan read (and check) it all.
        assert_eq!(read(&["/id", "/missing"], body), Err(ScanError::NotJson));
        assert_eq!(
            read(&["/id", "/missing"], r#"{"id":"e1","x":[1,{"y":2}]}"#),
            Ok(vec![some("e1"), None])
        );
        // The stop leaves the closing brackets to serde_json: a container
        // that ends right there, one left open in an object or an array,
        // and text after a whole document all read the same.
        let top = ["/id", "/type"];
        for (pointers, body) in [
            (top, r#"{"id":"e1","type":"t"}"#),
            (top, r#"{"id":"e1","type":"t"} trailing"#),
            (["/data/id", "/data/type"], r#"{"data":{"id":"e1","type":"t","rest":"#),
            (
                ["/items/0/id", "/items/1/type"],
                r#"{"items":[{"id":"e1"},{"type":"t"},"#,
            ),
        ] {
            assert_eq!(read(&pointers, body), Ok(vec![some("e1"), some("t")]), "{body}");
        }
    }

    /// With alternatives, the scan stops once the first present one is
    /// known: a body that breaks after `type` is still read.
    #[test]
    fn alternatives_stop_at_the_first_present_one() {
        let groups = [vec!["/id".to_string()], vec!["/type".to_string(), "/event".to_string()]];
        let l = Lookup::grouped(&groups);
        let got = l.read(br#"{"id":"e","type":"t","data":{"broken": "#).unwrap();
        assert_eq!(got[l.slot("/type").unwrap()].as_deref(), Some("t"));
        assert_eq!(got[l.slot("/event").unwrap()], None);
        // `event` before `type`: `type` is preferred, so the scan goes on to find it.
        let got = l.read(br#"{"event":"e1","id":"e","type":"t"}"#).unwrap();
        assert_eq!(got[l.slot("/type").unwrap()].as_deref(), Some("t"));
        // `type` null: the next alternative is read.
        let got = l.read(br#"{"type":null,"id":"e","event":"ev"}"#).unwrap();
        assert_eq!(got[l.slot("/event").unwrap()].as_deref(), Some("ev"));
    }

    #[test]
    fn rejects_what_is_not_an_object() {
        assert_eq!(read(&["/id"], "not json"), Err(ScanError::NotJson));
        assert_eq!(read(&["/id"], "[1,2]"), Err(ScanError::NotObject));
        assert_eq!(read(&["/id"], r#""text""#), Err(ScanError::NotObject));
        assert_eq!(read(&["/id"], ""), Err(ScanError::NotJson));
        assert_eq!(read(&[], "{}"), Ok(vec![]));
        assert_eq!(read(&[], "[]"), Err(ScanError::NotObject));
        assert_eq!(
            read(&["/id"], r#"{"id":"e1"} trailing"#),
            Ok(vec![some("e1")]),
            "found before the end"
        );
        assert_eq!(read(&["/x"], r#"{"id":"e1"} trailing"#), Err(ScanError::NotJson));
    }

    #[test]
    fn escaped_names_and_pointer_escapes() {
        let body = r#"{"a\/b":"slash","m~n":"tilde","q\"k":"quote","\u0069d":"unicode"}"#;
        assert_eq!(
            read(&["/a~1b", "/m~0n", "/q\"k", "/id"], body),
            Ok(vec![some("slash"), some("tilde"), some("quote"), some("unicode")])
        );
    }

    #[test]
    fn the_first_of_duplicate_members_wins() {
        assert_eq!(
            read(&["/id"], r#"{"id":"first","id":"second"}"#),
            Ok(vec![some("first")])
        );
    }

    #[test]
    fn a_type_after_the_data_is_read_from_the_end_without_reading_the_data() {
        // The data in the middle is not JSON at all: it is never read.
        let body =
            r#"{"id":"evt_1","object":"event","data":{ not json },"livemode":false,"n":12.50,"type":"invoice.paid"}"#;
        assert_eq!(
            read(&["/id", "/type", "/n", "/livemode"], body),
            Ok(vec![some("evt_1"), some("invoice.paid"), some("12.5"), some("false")])
        );
        // Escapes, null and whitespace at the end are read as the forward walk reads them.
        let body = "{\"id\":\"e\",\"d\":[1],\"x\":null,\"type\" : \"a\\\"b\\\\\" \n}\n";
        assert_eq!(
            read(&["/id", "/type", "/x"], body),
            Ok(vec![some("e"), some("a\"b\\"), None])
        );
        assert_eq!(
            read(&["/id", "/\u{e9}"], r#"{"id":"e","d":{},"\u00e9":"accent"}"#),
            Ok(vec![some("e"), some("accent")])
        );
    }

    #[test]
    fn the_end_is_read_only_as_far_as_it_is_made_of_scalars() {
        // A container at the end: the walk goes forward, reading (and so
        // checking) the data.
        let body = r#"{"id":"e","data":{"a":[1,2]},"type":"t","meta":{"x":1}}"#;
        assert_eq!(read(&["/id", "/type"], body), Ok(vec![some("e"), some("t")]));
        let broken = r#"{"id":"e","data":{ not json },"type":"t","meta":{"x":1}}"#;
        assert_eq!(read(&["/id", "/type"], broken), Err(ScanError::NotJson));
        // A malformed end (a closing quote that is escaped) is left to the
        // forward walk, which rejects it.
        assert_eq!(
            read(&["/id", "/type"], r#"{"id":"e","d":{},"type":"t\"}"#),
            Err(ScanError::NotJson)
        );
        // A wanted path that goes deeper than the member at the end is left
        // to the forward walk too.
        let body = r#"{"id":"e","d":{},"meta":"flat"}"#;
        assert_eq!(read(&["/id", "/meta/kind"], body), Ok(vec![some("e"), None]));
        // Alternatives: `event` at the end does not settle a preferred `type`
        // that may come earlier; the forward walk looks for it.
        let groups = [vec!["/id".to_string()], vec!["/type".to_string(), "/event".to_string()]];
        let l = Lookup::grouped(&groups);
        let got = l
            .read(br#"{"id":"e","d":{"a":1},"type":"t","x":0,"event":"ev"}"#)
            .unwrap();
        assert_eq!(got[l.slot("/type").unwrap()].as_deref(), Some("t"));
        let got = l.read(br#"{"id":"e","d":{"a":1},"event":"ev"}"#).unwrap();
        assert_eq!(got[l.slot("/type").unwrap()], None);
        assert_eq!(got[l.slot("/event").unwrap()].as_deref(), Some("ev"));
    }

    #[test]
    fn the_first_members_are_checked_as_strictly_as_the_walk_checks_them() {
        for broken in [
            r#"{"id":"e1" "type":"t"}"#,
            r#"{"id":"e1",,"type":"t"}"#,
            r#"{"id":01,"type":"t"}"#,
            r#"{"id":-,"type":"t"}"#,
            r#"{"id":tru,"type":"t"}"#,
            "{\"id\":\"e\u{1}1\",\"type\":\"t\"}",
            r#"{id:"e1","type":"t"}"#,
            r#"{"id":"e1":"type":"t"}"#,
        ] {
            assert_eq!(read(&["/id", "/type"], broken), Err(ScanError::NotJson), "{broken}");
        }
        let latin1 = b"{\"id\":\"\xe9\",\"type\":\"t\"}";
        assert_eq!(lookup(&["/id", "/type"]).read(latin1), Err(ScanError::NotJson));
    }

    #[test]
    fn leading_scalars_read_directly_are_what_the_walk_renders() {
        let body = r#"{ "a" : -5 ,"b":0,"c":1.50,"d":1e2,"e":123456789012345678901,"f":-0,"g":true,"h":null,"i":"","j":"x\"y","k":123456789012345678,"type":"t"}"#;
        let pointers = [
            "/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h", "/i", "/j", "/k", "/type",
        ];
        let value: Value = serde_json::from_str(body).expect("valid");
        let l = lookup(&pointers);
        assert_eq!(l.read(body.as_bytes()), Ok(l.read_value(&value)));
        assert_eq!(
            read(&pointers, body).unwrap(),
            [
                some("-5"),
                some("0"),
                some("1.5"),
                some("100.0"),
                some("1.2345678901234567e+20"),
                some("-0.0"),
                some("true"),
                None,
                None,
                some("x\"y"),
                some("123456789012345678"),
                some("t")
            ]
        );
    }

    #[test]
    fn an_unwanted_container_after_the_first_members_sends_the_scan_to_the_end() {
        // Stripe's layout: the data is never read, by either reader.
        let body = r#"{"id":"evt_1","object":"event","data":{ not json },"type":"invoice.paid"}"#;
        assert_eq!(
            read(&["/id", "/type"], body),
            Ok(vec![some("evt_1"), some("invoice.paid")])
        );
        // A wanted container is descended into by the walk.
        let body = r#"{"id":"evt_1","data":{"object":{"id":"in_1"}},"type":"t"}"#;
        assert_eq!(
            read(&["/id", "/data/object/id", "/type"], body),
            Ok(vec![some("evt_1"), some("in_1"), some("t")])
        );
    }

    proptest! {
        /// Whatever plain or unusual values come first, the scan agrees
        /// with a full parse.
        #[test]
        fn leading_values_of_any_kind_agree_with_a_full_parse(
            tokens in proptest::collection::vec(proptest::sample::select(vec![
                "0", "-0", "7", "-12", "1.5", "1e3", "-1E-2", "123456789012345678",
                "1234567890123456789", "12345678901234567890123", "true", "false", "null",
                "\"\"", "\"plain\"", "\"esc\\\"aped\"", "\"\\u00e9\"", "\"\u{e9}\"",
                "[1]", "{\"k\":1}",
            ]), 0..6),
            first in 0usize..6,
        ) {
            let mut members: Vec<String> = tokens.iter().enumerate().map(|(i, t)| format!("\"m{i}\" : {t}")).collect();
            members.insert(first.min(members.len()), "\"type\":\"t\"".to_string());
            let text = format!("{{{}}}", members.join(","));
            let value: Value = serde_json::from_str(&text).expect("valid");
            let l = lookup(&["/m0", "/m1", "/m2", "/type"]);
            prop_assert_eq!(l.read(text.as_bytes()), Ok(l.read_value(&value)), "{}", text);
        }

        /// On any JSON object, whatever the order of its members and
        /// however large the data between them, the scan agrees with a
        /// full parse.
        #[test]
        fn agrees_with_a_full_parse_in_any_member_order(
            members in proptest::collection::vec(0usize..6, 0..6).prop_map(|v| {
                let mut seen = Vec::new();
                for m in v { if !seen.contains(&m) { seen.push(m); } }
                seen
            }),
            id in "[a-z0-9_\"\\\\]{0,8}",
            items in proptest::collection::vec(("[ -~]{0,12}", any::<i32>()), 0..20),
        ) {
            let data = serde_json::json!({"items": items.iter().map(|(s, n)| serde_json::json!({"s": s, "n": n})).collect::<Vec<_>>()});
            let mut text = String::from("{");
            for (k, m) in members.iter().enumerate() {
                if k > 0 { text.push(','); }
                let member = match m {
                    0 => format!("\"id\":{}", Value::String(id.clone())),
                    1 => "\"type\":\"invoice.paid\"".to_string(),
                    2 => format!("\"data\":{data}"),
                    3 => "\"livemode\":false".to_string(),
                    4 => "\"created\": 1732380000".to_string(),
                    _ => "\"meta\":{\"kind\":7}".to_string(),
                };
                text.push_str(&member);
            }
            text.push('}');
            let value: Value = serde_json::from_str(&text).expect("valid");
            let l = lookup(&["/id", "/type", "/created", "/meta/kind", "/data/items/0/n"]);
            prop_assert_eq!(l.read(text.as_bytes()), Ok(l.read_value(&value)), "{}", text);
        }

        /// On any JSON object the scan agrees with a full parse.
        #[test]
        fn agrees_with_a_full_parse(
            id in proptest::option::of("[a-z0-9_]{0,12}"),
            kind in proptest::option::of(0u32..1000),
            noise in proptest::collection::vec(("[a-z]{1,6}", "[ -~]{0,20}"), 0..8),
        ) {
            let mut map = serde_json::Map::new();
            for (k, v) in &noise {
                map.insert(k.clone(), Value::String(v.clone()));
            }
            if let Some(id) = &id {
                map.insert("id".into(), Value::String(id.clone()));
            }
            if let Some(kind) = kind {
                map.insert("meta".into(), serde_json::json!({"kind": kind, "tags": [kind]}));
            }
            let value = Value::Object(map);
            let l = lookup(&["/id", "/meta/kind", "/meta/tags/0"]);
            let text = value.to_string();
            prop_assert_eq!(l.read(text.as_bytes()), Ok(l.read_value(&value)));
        }

        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = lookup(&["/id", "/a/0/b"]).read(&body);
        }
    }
}
