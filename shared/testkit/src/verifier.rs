//! The property every verifier's tests run, whatever its scheme signs.
//!
//! A delivery built from the signed material (the body, for body-signing
//! schemes; the signed id, for a scheme that signs a query parameter)
//! verifies, and the same delivery with any one byte of that material
//! changed is refused as `invalid_signature`: not accepted, and not
//! mistaken for a missing signature. Proptest picks the byte and the change.
//!
//! The verifier is reached only through the `verify` closure, over plain
//! bytes and the refusal's reason code, so the crate whose verifiers are
//! tested can call this from its own unit tests without its types having to
//! match the copy of that crate this kit is built against.

use proptest::prop_assert_eq;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

/// `material` with the byte at `at` XORed with `flip`; `None` when nothing
/// would change (empty material, or `flip` 0).
pub fn changed_byte(material: &[u8], at: Index, flip: u8) -> Option<Vec<u8>> {
    if material.is_empty() || flip == 0 {
        return None;
    }
    let mut changed = material.to_vec();
    changed[at.index(material.len())] ^= flip;
    Some(changed)
}

/// `verify(material)` answers `Ok(())`, and `verify` of the material with
/// one byte changed answers `Err("invalid_signature")`. `verify` builds the
/// delivery from the bytes it is given, with the signature made over the
/// original material, and returns the verifier's answer as a reason code.
pub fn signed_passes_and_a_changed_byte_fails(
    material: &[u8],
    at: Index,
    flip: u8,
    verify: impl Fn(&[u8]) -> Result<(), &'static str>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(verify(material), Ok(()), "the delivery as signed");
    if let Some(changed) = changed_byte(material, at, flip) {
        prop_assert_eq!(verify(&changed), Err("invalid_signature"), "one byte changed");
    }
    Ok(())
}
