//! The component (wasm32 only): the rate limit first, then guest-logic's
//! default rules for every request it lets through.

use guest_logic::bindings::exports::switchboard::policy::handler::Guest;
use guest_logic::bindings::switchboard::policy::clock;
use guest_logic::bindings::switchboard::policy::types as wit;
use guest_logic::{DefaultPolicy, Host, lower};

struct RateLimit;

impl Guest for RateLimit {
    fn on_connect(info: wit::ConnectInfo) -> Result<Vec<wit::Action>, wit::Reject> {
        DefaultPolicy::on_connect(info)
    }

    fn on_message(sender: wit::ConnId, frame: wit::Frame) -> Vec<wit::Action> {
        if let wit::Frame::Text(text) = &frame
            && let Some(actions) = crate::check(&Host, &sender, text, clock::monotonic_ns())
        {
            return lower(actions);
        }
        DefaultPolicy::on_message(sender, frame)
    }

    fn on_disconnect(id: wit::ConnId) -> Vec<wit::Action> {
        crate::forget_if_full(&Host, &id, clock::monotonic_ns());
        DefaultPolicy::on_disconnect(id)
    }
}

guest_logic::bindings::export!(RateLimit with_types_in guest_logic::bindings);
