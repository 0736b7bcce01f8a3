//! The one `bindgen!` of the host: Rust types and traits generated for both
//! world versions a policy may target, `switchboard:policy@0.1.0`
//! (wit/v0.1.0, frozen) and `@0.2.0` (wit/). They differ only in version, so
//! the generated modules carry it: `switchboard::policy0_1_0::…` and
//! `switchboard::policy0_2_0::…`. The host links both; a component uses
//! the one it was built against (`version.rs` finds which).

wasmtime::component::bindgen!({
    inline: "
        package switchboard:host;

        world policies {
            include switchboard:policy/policy@0.1.0;
            include switchboard:policy/policy@0.2.0;
        }
    ",
    path: ["../wit/v0.1.0", "../wit"],
    world: "policies",
    require_store_data_send: true,
});

/// The generated types of world 0.1.0.
pub use switchboard::policy0_1_0 as v1;
/// The generated types of world 0.2.0.
pub use switchboard::policy0_2_0 as v2;
