//! The protocol's TypeScript types, generated from the serde types of this crate with `ts-rs`.
//!
//! [`bindings`] gives one self-contained TypeScript module (no imports) declaring every type
//! reachable from [`ClientMsg`] and [`ServerMsg`], with their doc comments as JSDoc, in name
//! order, so the output is the same on every build. The checked-in copy is
//! `web-client/packages/client/src/generated/protocol.ts`; the test `signaling/tests/typescript.rs`
//! fails when it differs and says how to regenerate it.
//!
//! ts-rs rather than specta: a derive that reads the serde attributes the wire types already
//! carry (`tag`, `content`, `rename_all`, `flatten`, `default`, `skip_serializing_if`), with no
//! type registry or exporter crate beside it, and carries the doc comments over; specta's
//! TypeScript exporter is a second crate still in release candidates.

use std::any::TypeId;
use std::collections::{BTreeMap, HashSet};

use ts_rs::{Config, TS, TypeVisitor};

use crate::{ClientMsg, ErrorCode, ServerMsg};

/// Where the checked-in copy lives, relative to the repository root.
pub const CHECKED_IN_PATH: &str = "web-client/packages/client/src/generated/protocol.ts";

/// The ts-rs settings: 64-bit integers are JavaScript numbers (the protocol keeps every value
/// below 2^53: sequence numbers, milliseconds, counts), not `bigint`.
fn config() -> Config {
    Config::new().with_large_int("number")
}

/// Collects the declarations of a type and everything it refers to, once each.
struct Collect<'a> {
    cfg: &'a Config,
    seen: HashSet<TypeId>,
    decls: BTreeMap<String, String>,
}

impl Collect<'_> {
    fn add<T: TS + ?Sized + 'static>(&mut self) {
        if !self.seen.insert(TypeId::of::<T>()) {
            return;
        }
        // Types without a declaration of their own (primitives, `Vec`, `Option`, types given a
        // `#[ts(type)]`) are written inline where they are used; what they hold may have one.
        if T::output_path().is_some() {
            let mut decl = T::docs().unwrap_or_default();
            decl.push_str("export ");
            decl.push_str(&T::decl(self.cfg));
            self.decls.insert(T::ident(self.cfg), decl);
        }
        T::visit_dependencies(self);
    }
}

impl TypeVisitor for Collect<'_> {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        self.add::<T>();
    }
}

/// The TypeScript module declaring the protocol's types.
pub fn bindings() -> String {
    let cfg = config();
    let mut c = Collect { cfg: &cfg, seen: HashSet::new(), decls: BTreeMap::new() };
    c.add::<ClientMsg>();
    c.add::<ServerMsg>();
    c.add::<ErrorCode>();
    // Inlined where they are used (flattened), but clients build them on their own.
    c.add::<crate::consult::QuestionOp>();
    let mut out = String::from(
        "// Generated from the Rust types of the crate shangliang-signaling (signaling/src) by ts-rs.\n\
         // Do not edit: regenerate with\n\
         //   SHANGLIANG_WRITE_TS=1 cargo test -p shangliang-signaling --test typescript\n\
         // (the same test fails in CI when this file is not up to date).\n",
    );
    for decl in c.decls.values() {
        out.push('\n');
        out.push_str(decl);
        out.push('\n');
    }
    out
}
