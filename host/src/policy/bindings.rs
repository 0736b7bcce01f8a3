//! The one `bindgen!` of the host: Rust types and traits generated from
//! wit/policy.wit.

wasmtime::component::bindgen!({
    world: "policy",
    path: "../wit",
    require_store_data_send: true,
});
