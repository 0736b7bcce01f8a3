//! The `switchboard:policy` bindings (wasm32 only), generated once here and
//! public so that other policies reuse them, with the default rules, instead
//! of generating their own:
//!
//! - [`exports::switchboard::policy::handler::Guest`]: the trait a policy
//!   implements (`on_connect`, `on_message`, `on_disconnect`).
//! - [`switchboard::policy`]`::{types, registry, state, log, clock}`: the WIT
//!   types and the host imports.
//! - [`export!`](crate::bindings::export): exports a `Guest` implementation as
//!   the component's handler. From another crate (which must depend on this
//!   one with `default-features = false`, so the default rules are not
//!   exported too):
//!
//!   ```ignore
//!   struct MyPolicy;
//!   impl guest_logic::bindings::exports::switchboard::policy::handler::Guest for MyPolicy { /* … */ }
//!   guest_logic::bindings::export!(MyPolicy with_types_in guest_logic::bindings);
//!   ```
//!
//!   (`with_types_in guest_logic::bindings` is the default, so
//!   `guest_logic::bindings::export!(MyPolicy)` is the same.)

wit_bindgen::generate!({
    world: "policy",
    path: "../wit",
    // `export!` usable from other crates, finding the types here.
    pub_export_macro: true,
    default_bindings_module: "guest_logic::bindings",
});
