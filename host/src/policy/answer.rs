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
use std::marker::PhantomData;

use wasmtime::ValRaw;
use wasmtime::component::__internal::wasmtime_environ::component::StringEncoding;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift, WasmList};

use super::bindings::{v1, v2};
use super::types::{Action, CallError};

/// A world version's `action` type, as far as an answer needs it: lifted
/// and converted to the host's [`Action`], and a mirror (`Raw`) that reads
/// only its lengths.
pub trait WitAction: ComponentType + Lift + Into<Action> {
    /// The same type with every string and byte list replaced by its
    /// length (same layout).
    type Raw: ComponentType + Lift + Measure;
}

/// Bytes of every string and byte list of an action, read without copying.
pub trait Measure {
    /// See `Action::output_bytes`, which counts the same on the copy.
    fn bytes(&self) -> usize;
}

impl WitAction for v1::types::Action {
    type Raw = RawAction;
}

impl WitAction for v2::types::Action {
    type Raw = RawAction2;
}

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
    let largest = size_of::<v1::types::Action>().max(size_of::<v2::types::Action>());
    bound
        .max_actions
        .saturating_mul(largest)
        .saturating_add(bound.max_bytes)
}

/// A call's answer: the actions, copied out, or why they were refused
/// before being copied. Refusing is not an error of the call: the guest
/// returned normally, its instance stays usable.
pub enum Decided {
    /// Within bounds.
    Actions(Vec<Action>),
    /// Over a bound (`TooManyActions` or `TooManyBytes`).
    Refused(CallError),
}

/// A [`Decided`] lifted from a `list<action>` of the world whose action
/// type is `A`.
pub struct Answer<A> {
    /// What the call decided.
    pub decided: Decided,
    world: PhantomData<fn() -> A>,
}

impl<A> Answer<A> {
    fn new(decided: Decided) -> Self {
        Answer {
            decided,
            world: PhantomData,
        }
    }
}

// SAFETY: `Answer<A>` takes the place of `list<action>`: its lowered form,
// ABI and type check are those of `Vec<A>`, and its lifting reads the list
// as that type's lifting does (through `WasmList` and the generated element
// lifting).
unsafe impl<A: WitAction> ComponentType for Answer<A> {
    type Lower = <Vec<A> as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <Vec<A> as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Vec<A> as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: see `ComponentType for Answer`.
unsafe impl<A: WitAction> Lift for Answer<A> {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let (ptr, len) = (src[0].get_u32() as usize, src[1].get_u32() as usize);
        measure_then_copy(cx, ty, ptr, len, |cx| {
            WasmList::<A>::linear_lift_from_flat(cx, ty, src)
        })
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let (ptr, len) = (u32_at(bytes, 0)? as usize, u32_at(bytes, 4)? as usize);
        measure_then_copy(cx, ty, ptr, len, |cx| {
            WasmList::<A>::linear_lift_from_memory(cx, ty, bytes)
        })
    }
}

/// Check the `len` actions at `ptr` against the bound: their number first,
/// then each one's bytes before it is copied.
fn measure_then_copy<A: WitAction>(
    cx: &mut LiftContext<'_>,
    ty: InterfaceType,
    ptr: usize,
    len: usize,
    validate: impl FnOnce(&mut LiftContext<'_>) -> wasmtime::Result<WasmList<A>>,
) -> wasmtime::Result<Answer<A>> {
    let bound = BOUND.get().ok_or_else(|| {
        wasmtime::format_err!("a policy answer was lifted outside a bounded call")
    })?;
    if len > bound.max_actions {
        return Ok(Answer::new(Decided::Refused(CallError::TooManyActions {
            got: len,
            limit: bound.max_actions,
        })));
    }
    // Checks that the list lies in memory, aligned (the loop below relies
    // on it), without reading its elements.
    validate(cx)?;
    let InterfaceType::List(list) = ty else {
        wasmtime::bail!("a policy answer is not a list");
    };
    let elem = cx.types[list].element;
    let size = <A as ComponentType>::SIZE32;
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
        let raw = A::Raw::linear_lift_from_memory(cx, elem, at(i)?)?;
        bytes = bytes.saturating_add(raw.bytes());
        if bytes > bound.max_bytes {
            // Measure the rest without copying, to tell the whole size.
            for j in i + 1..len {
                let raw = A::Raw::linear_lift_from_memory(cx, elem, at(j)?)?;
                bytes = bytes.saturating_add(raw.bytes());
            }
            return Ok(Answer::new(Decided::Refused(CallError::TooManyBytes {
                got: bytes,
                limit: bound.max_bytes,
            })));
        }
        let action = A::linear_lift_from_memory(cx, elem, at(i)?)?;
        actions.push(action.into());
    }
    Ok(Answer::new(Decided::Actions(actions)))
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
pub struct Len(usize);

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

// Mirrors of the `action` types of wit/v0.1.0/policy.wit and
// wit/policy.wit with every string and `list<u8>` replaced by its length.
// Field and case order follow the WIT. (Their layout is the same as the
// generated types': the loop above reads both from the same element.)
const _: () =
    assert!(<RawAction as ComponentType>::SIZE32 == <v1::types::Action as ComponentType>::SIZE32);
const _: () =
    assert!(<RawAction2 as ComponentType>::SIZE32 == <v2::types::Action as ComponentType>::SIZE32);

#[derive(ComponentType, Lift)]
#[component(variant)]
pub enum RawFrame {
    #[component(name = "text")]
    Text(Len),
    #[component(name = "binary")]
    Binary(Len),
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct RawSend {
    to: Len,
    frame: RawFrame,
    #[component(name = "on-sent")]
    on_sent: Option<RawFrame>,
    #[component(name = "on-closed")]
    on_closed: Option<RawFrame>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct RawSendRoom {
    room: Len,
    frame: RawFrame,
    except: Option<Len>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct RawBroadcast {
    frame: RawFrame,
    except: Option<Len>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct RawMembership {
    id: Len,
    room: Len,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct RawClose {
    id: Len,
    #[component(name = "code")]
    _code: u16,
    reason: Len,
}

/// World 0.1.0's `action`.
#[derive(ComponentType, Lift)]
#[component(variant)]
pub enum RawAction {
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

impl Measure for RawAction {
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

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct RawSend2 {
    to: Len,
    frame: RawFrame,
    #[component(name = "on-sent")]
    on_sent: Option<RawFrame>,
    #[component(name = "on-closed")]
    on_closed: Option<RawFrame>,
    #[component(name = "on-held")]
    on_held: Option<RawFrame>,
    #[component(name = "store")]
    _store: bool,
    #[component(name = "on-stored")]
    on_stored: Option<RawFrame>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct RawSendRoom2 {
    room: Len,
    frame: RawFrame,
    except: Option<Len>,
    #[component(name = "transient")]
    _transient: bool,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct RawPosition {
    epoch: Len,
    #[component(name = "offset")]
    _offset: u64,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct RawJoin {
    id: Len,
    room: Len,
    since: Option<RawPosition>,
    #[component(name = "on-joined")]
    on_joined: Option<RawFrame>,
}

/// World 0.2.0's `action`.
#[derive(ComponentType, Lift)]
#[component(variant)]
pub enum RawAction2 {
    #[component(name = "reply")]
    Reply(RawFrame),
    #[component(name = "send")]
    Send(RawSend2),
    #[component(name = "send-room")]
    SendRoom(RawSendRoom2),
    #[component(name = "broadcast")]
    Broadcast(RawBroadcast),
    #[component(name = "join")]
    Join(RawJoin),
    #[component(name = "leave")]
    Leave(RawMembership),
    #[component(name = "close")]
    Close(RawClose),
}

impl Measure for RawAction2 {
    fn bytes(&self) -> usize {
        let len = |n: &Len| n.0;
        let parts: [usize; 6] = match self {
            RawAction2::Reply(f) => [f.bytes(), 0, 0, 0, 0, 0],
            RawAction2::Send(s) => [
                s.to.0,
                s.frame.bytes(),
                opt(&s.on_sent, RawFrame::bytes),
                opt(&s.on_closed, RawFrame::bytes),
                opt(&s.on_held, RawFrame::bytes),
                opt(&s.on_stored, RawFrame::bytes),
            ],
            RawAction2::SendRoom(s) => [s.room.0, s.frame.bytes(), opt(&s.except, len), 0, 0, 0],
            RawAction2::Broadcast(b) => [b.frame.bytes(), opt(&b.except, len), 0, 0, 0, 0],
            RawAction2::Join(j) => [
                j.id.0,
                j.room.0,
                opt(&j.since, |p| p.epoch.0),
                opt(&j.on_joined, RawFrame::bytes),
                0,
                0,
            ],
            RawAction2::Leave(m) => [m.id.0, m.room.0, 0, 0, 0, 0],
            RawAction2::Close(c) => [c.id.0, c.reason.0, 0, 0, 0, 0],
        };
        parts.iter().fold(0, |sum, n| sum.saturating_add(*n))
    }
}
