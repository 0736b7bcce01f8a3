//! A call's answer (`list<action>`), measured where the guest left it
//! before anything is copied out.
//!
//! Lifting the answer the ordinary way copies every string into host memory
//! first, and only then could it be counted: a guest that returns 100,000
//! actions all pointing at the same 8 MiB string would make the host copy
//! 800 GB. So the exports are called through typed functions whose result
//! is [`Answer`]: its lifting reads the list's length, then each action's
//! string and list lengths (no copy), checks them against the call's
//! [`Bound`], and only an answer within bounds is copied into owned
//! [`Action`]s. This all happens while the answer is still in guest memory
//! (wasmtime runs the guest's post-return, which frees it, right after).
//!
//! Each action is measured before it is copied, so at most the byte cap is
//! ever copied; past it the rest are only measured (to report the total).
//!
//! Lifting has no access to the store's data, so the bound travels in a
//! thread-local set around the call ([`bounded`]), which runs on this
//! thread from start to end.
//!
//! This implements wasmtime's lifting traits by hand, including items it
//! marks hidden (`__internal`): the project pins wasmtime 48.

use std::cell::Cell;

use wasmtime::ValRaw;
use wasmtime::component::__internal::wasmtime_environ::component::StringEncoding;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift, WasmList};

use super::bindings::switchboard::policy::types as wit;
use super::types::{Action, CallError};

/// What one call may return.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Most actions.
    pub max_actions: usize,
    /// Most bytes of strings and lists, all actions together.
    pub max_bytes: usize,
}

thread_local! {
    /// The bound of the call being polled on this thread.
    static BOUND: Cell<Option<Bound>> = const { Cell::new(None) };
}

/// Run `call` (a call into the guest) with `bound` in force for its
/// answer.
pub fn bounded<R>(bound: Bound, call: impl FnOnce() -> R) -> R {
    /// Puts back the bound that was in force (also if the call panics).
    struct Restore(Option<Bound>);
    impl Drop for Restore {
        fn drop(&mut self) {
            BOUND.set(self.0);
        }
    }
    let _restore = Restore(BOUND.replace(Some(bound)));
    call()
}

/// Host bytes lifting an answer within `bound` may take: the action list
/// and the copied strings (what wasmtime's hostcall fuel must allow).
pub fn fuel_needed(bound: Bound) -> usize {
    bound
        .max_actions
        .saturating_mul(size_of::<wit::Action>())
        .saturating_add(bound.max_bytes)
}

/// A call's answer: the actions, copied out, or why they were refused
/// before being copied. Refusing is not an error of the call: the guest
/// returned normally, its instance stays usable.
pub enum Answer {
    /// Within bounds.
    Actions(Vec<Action>),
    /// Over a bound (`TooManyActions` or `TooManyBytes`).
    Refused(CallError),
}

// SAFETY: `Answer` takes the place of `list<action>`: its lowered form, ABI
// and type check are those of `Vec<wit::Action>`, and its lifting reads the
// list as that type's lifting does (through `WasmList` and the generated
// element lifting).
unsafe impl ComponentType for Answer {
    type Lower = <Vec<wit::Action> as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <Vec<wit::Action> as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Vec<wit::Action> as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: see `ComponentType for Answer`.
unsafe impl Lift for Answer {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let (ptr, len) = (src[0].get_u32() as usize, src[1].get_u32() as usize);
        measure_then_copy(cx, ty, ptr, len, |cx| {
            WasmList::<wit::Action>::linear_lift_from_flat(cx, ty, src)
        })
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let (ptr, len) = (u32_at(bytes, 0)? as usize, u32_at(bytes, 4)? as usize);
        measure_then_copy(cx, ty, ptr, len, |cx| {
            WasmList::<wit::Action>::linear_lift_from_memory(cx, ty, bytes)
        })
    }
}

/// Check the `len` actions at `ptr` against the bound: their number first,
/// then each one's bytes before it is copied.
fn measure_then_copy(
    cx: &mut LiftContext<'_>,
    ty: InterfaceType,
    ptr: usize,
    len: usize,
    validate: impl FnOnce(&mut LiftContext<'_>) -> wasmtime::Result<WasmList<wit::Action>>,
) -> wasmtime::Result<Answer> {
    let bound = BOUND.get().ok_or_else(|| {
        wasmtime::format_err!("a policy answer was lifted outside a bounded call")
    })?;
    if len > bound.max_actions {
        return Ok(Answer::Refused(CallError::TooManyActions {
            got: len,
            limit: bound.max_actions,
        }));
    }
    // Checks that the list lies in memory, aligned (the loop below relies
    // on it), without reading its elements.
    validate(cx)?;
    let InterfaceType::List(list) = ty else {
        wasmtime::bail!("a policy answer is not a list");
    };
    let elem = cx.types[list].element;
    let size = <wit::Action as ComponentType>::SIZE32;
    let memory = cx.memory();
    let at = |i: usize| {
        memory
            .get(ptr + i * size..)
            .and_then(|m| m.get(..size))
            .ok_or_else(|| wasmtime::format_err!("policy answer out of bounds"))
    };
    let mut actions = Vec::with_capacity(len);
    let mut bytes = 0usize;
    for i in 0..len {
        let raw = RawAction::linear_lift_from_memory(cx, elem, at(i)?)?;
        bytes = bytes.saturating_add(raw.bytes());
        if bytes > bound.max_bytes {
            // Measure the rest without copying, to tell the whole size.
            for j in i + 1..len {
                let raw = RawAction::linear_lift_from_memory(cx, elem, at(j)?)?;
                bytes = bytes.saturating_add(raw.bytes());
            }
            return Ok(Answer::Refused(CallError::TooManyBytes {
                got: bytes,
                limit: bound.max_bytes,
            }));
        }
        let action = wit::Action::linear_lift_from_memory(cx, elem, at(i)?)?;
        actions.push(Action::from(action));
    }
    Ok(Answer::Actions(actions))
}

fn u32_at(bytes: &[u8], at: usize) -> wasmtime::Result<u32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| wasmtime::format_err!("malformed list in a policy answer"))
}

/// The length in bytes a `string` or `list<u8>` would take in host memory,
/// read without copying it (nor checking it lies in memory: the copy that
/// follows a successful measure checks that).
#[derive(Debug, Clone, Copy)]
struct Len(usize);

/// Marks UTF-16 in a `latin1+utf16` string's length.
const UTF16_TAG: usize = 1 << 31;

// SAFETY: the lowered form and ABI of a `string` or `list<u8>` (a pointer
// and a length), which is all the type check accepts.
unsafe impl ComponentType for Len {
    type Lower = [ValRaw; 2];

    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        match ty {
            InterfaceType::String => Ok(()),
            _ => <Vec<u8> as ComponentType>::typecheck(ty, types),
        }
    }
}

// SAFETY: reads only the length of the pointer pair, never memory.
unsafe impl Lift for Len {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        Ok(Len::of(cx, ty, src[1].get_u32() as usize))
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        Ok(Len::of(cx, ty, u32_at(bytes, 4)? as usize))
    }
}

impl Len {
    /// Bytes of UTF-8 (strings) or of the list for a canonical-ABI length:
    /// a UTF-16 code unit can become up to 3 bytes, a Latin-1 one 2.
    fn of(cx: &LiftContext<'_>, ty: InterfaceType, len: usize) -> Len {
        if !matches!(ty, InterfaceType::String) {
            return Len(len);
        }
        Len(match cx.options().string_encoding {
            StringEncoding::Utf8 => len,
            StringEncoding::Utf16 => len.saturating_mul(3),
            StringEncoding::CompactUtf16 if len & UTF16_TAG != 0 => {
                (len ^ UTF16_TAG).saturating_mul(3)
            }
            StringEncoding::CompactUtf16 => len.saturating_mul(2),
        })
    }
}

// Mirrors of the `action` type of wit/policy.wit with every string and
// `list<u8>` replaced by its length. Field and case order follow the WIT.
// (Their layout is the same as the generated types': the loop above reads
// both from the same element.)
const _: () =
    assert!(<RawAction as ComponentType>::SIZE32 == <wit::Action as ComponentType>::SIZE32);

#[derive(ComponentType, Lift)]
#[component(variant)]
enum RawFrame {
    #[component(name = "text")]
    Text(Len),
    #[component(name = "binary")]
    Binary(Len),
}

#[derive(ComponentType, Lift)]
#[component(record)]
struct RawSend {
    to: Len,
    frame: RawFrame,
    #[component(name = "on-sent")]
    on_sent: Option<RawFrame>,
    #[component(name = "on-closed")]
    on_closed: Option<RawFrame>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
struct RawSendRoom {
    room: Len,
    frame: RawFrame,
    except: Option<Len>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
struct RawBroadcast {
    frame: RawFrame,
    except: Option<Len>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
struct RawMembership {
    id: Len,
    room: Len,
}

#[derive(ComponentType, Lift)]
#[component(record)]
struct RawClose {
    id: Len,
    #[component(name = "code")]
    _code: u16,
    reason: Len,
}

#[derive(ComponentType, Lift)]
#[component(variant)]
enum RawAction {
    #[component(name = "reply")]
    Reply(RawFrame),
    #[component(name = "send")]
    Send(RawSend),
    #[component(name = "send-room")]
    SendRoom(RawSendRoom),
    #[component(name = "broadcast")]
    Broadcast(RawBroadcast),
    #[component(name = "join")]
    Join(RawMembership),
    #[component(name = "leave")]
    Leave(RawMembership),
    #[component(name = "close")]
    Close(RawClose),
}

impl RawFrame {
    fn bytes(&self) -> usize {
        match self {
            RawFrame::Text(n) | RawFrame::Binary(n) => n.0,
        }
    }
}

/// Bytes of an optional string or frame.
fn opt<T>(v: &Option<T>, bytes: impl Fn(&T) -> usize) -> usize {
    v.as_ref().map_or(0, bytes)
}

impl RawAction {
    /// Every string and byte list of the action (see `Action::output_bytes`,
    /// which counts the same on the copy).
    fn bytes(&self) -> usize {
        let len = |n: &Len| n.0;
        let parts: [usize; 4] = match self {
            RawAction::Reply(f) => [f.bytes(), 0, 0, 0],
            RawAction::Send(s) => [
                s.to.0,
                s.frame.bytes(),
                opt(&s.on_sent, RawFrame::bytes),
                opt(&s.on_closed, RawFrame::bytes),
            ],
            RawAction::SendRoom(s) => [s.room.0, s.frame.bytes(), opt(&s.except, len), 0],
            RawAction::Broadcast(b) => [b.frame.bytes(), opt(&b.except, len), 0, 0],
            RawAction::Join(m) | RawAction::Leave(m) => [m.id.0, m.room.0, 0, 0],
            RawAction::Close(c) => [c.id.0, c.reason.0, 0, 0],
        };
        parts.iter().fold(0, |sum, n| sum.saturating_add(*n))
    }
}
