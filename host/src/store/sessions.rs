//! Held sessions, as the connection layer asks for them: ids whose
//! connection ended abnormally, kept for a while for the client to come
//! back with `?resume=<session>`. Each is held with the token that may
//! claim it and what the host keeps for it meanwhile (`T`: on one server,
//! the queue that collects what it misses).

use async_trait::async_trait;

/// One held id.
#[derive(Debug)]
pub struct Held<T> {
    /// The token a resume must present.
    pub session: String,
    /// Which hold this is (a newer hold of the same id has another).
    pub serial: u64,
    /// What the host keeps for the id while it is away.
    pub kept: T,
}

/// What presenting a session for an id found.
#[derive(Debug)]
pub enum Claim<T> {
    /// The id was held with this session: it is the caller's now.
    Resumed(Held<T>),
    /// The id was held with another session (or none was presented): the
    /// hold is the caller's to end.
    Refused(Held<T>),
    /// The id is not held.
    NotHeld,
}

/// What holding an id took out of the store.
#[derive(Debug)]
pub struct Holding<T> {
    /// An older hold of the same id, replaced.
    pub replaced: Option<Held<T>>,
    /// The oldest hold (the one held longest), with its id, taken out to
    /// keep the store within its cap: ended early, exactly as if its
    /// window had ended. With a cap of 0, the new hold itself.
    pub evicted: Option<(String, Held<T>)>,
}

/// Every held id.
///
/// Holding, claiming and releasing are one atomic step each: whoever takes
/// a hold first (a resume, the end of the window, or a newer hold past the
/// cap) has it, and the others find nothing.
#[async_trait]
pub trait Sessions<T: Send + 'static>: std::fmt::Debug + Send + Sync {
    /// Hold `id`, replacing an older hold of it, and keep at most `max`
    /// holds: past it, the oldest is taken out. Both are returned, for the
    /// caller to end.
    async fn hold(&self, id: &str, held: Held<T>, max: usize) -> Holding<T>;

    /// Take `id`'s hold: resumed when `session` is its token, refused
    /// otherwise (a connection that takes the id without the token ends
    /// the hold).
    async fn claim(&self, id: &str, session: Option<&str>) -> Claim<T>;

    /// Take `id`'s hold if it is still hold `serial` (its window ended).
    async fn release(&self, id: &str, serial: u64) -> Option<Held<T>>;

    /// Whether `id` is held.
    fn is_held(&self, id: &str) -> bool;

    /// How many ids are held.
    fn len(&self) -> usize;

    /// Whether no id is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
