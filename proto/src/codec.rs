//! The codec of the generated client and server: prost's, except that a big
//! message is dropped on a thread of its own after it is encoded, not on the
//! task that is about to send it.
//!
//! tonic drops each message right after encoding it, before its first byte
//! goes out. A whole kube-proxy nat table (`Firewall`, ~5,700 rules of four
//! strings each) takes milliseconds to free — with the static agent's musl
//! allocator, tens of thousands of `free` calls and hundreds of `munmap`s —
//! which the answer then waited for. Messages under [`DEFER_DROP_BYTES`]
//! encoded are dropped in place, as prost's codec does, and so is a big one
//! when [`QUEUED_DROPS`] are already waiting (or the thread cannot be made).
//!
//! One long-lived thread, not the runtime's blocking pool: a burst of big
//! answers would otherwise start a pool thread per drop, each with a stack
//! of its own kept for the pool's idle time. (Measured, the agent's memory
//! 5 s after a burst was the same either way: BENCHMARKS.md.)

use std::marker::PhantomData;
use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, TrySendError};

use prost::Message;
use prost::bytes::BufMut;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::{ProstCodec, ProstDecoder};

/// Encoded size from which a message is dropped off the sending task.
pub const DEFER_DROP_BYTES: usize = 64 * 1024;

/// Big messages waiting for the drop thread at most.
pub const QUEUED_DROPS: usize = 4;

type Garbage = Box<dyn Send>;

/// The drop thread's queue, made with the first big message.
fn drops() -> Option<&'static SyncSender<Garbage>> {
    static QUEUE: OnceLock<Option<SyncSender<Garbage>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Garbage>(QUEUED_DROPS);
            std::thread::Builder::new()
                .name("drop-answers".into())
                .stack_size(64 * 1024)
                .spawn(move || rx.into_iter().for_each(drop))
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

/// [`tonic_prost::ProstCodec`] with big messages dropped on the drop thread.
#[derive(Debug, Clone)]
pub struct AgentCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for AgentCodec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> Codec for AgentCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = AgentEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        AgentEncoder { _pd: PhantomData }
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::default())
    }
}

/// Encodes like prost's encoder; see the [module](self) for the drop.
#[derive(Debug, Clone)]
pub struct AgentEncoder<T> {
    _pd: PhantomData<T>,
}

impl<T: Message + Send + 'static> Encoder for AgentEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let room = buf.remaining_mut();
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding the answer: {e}")))?;
        if room.saturating_sub(buf.remaining_mut()) < DEFER_DROP_BYTES {
            return Ok(());
        }
        let Some(queue) = drops() else {
            return Ok(());
        };
        match queue.try_send(Box::new(item)) {
            Ok(()) => {}
            Err(TrySendError::Full(item) | TrySendError::Disconnected(item)) => drop(item),
        }
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Says on a channel which thread dropped it.
    struct Witness(std::sync::mpsc::Sender<Option<String>>);

    impl Drop for Witness {
        fn drop(&mut self) {
            let _ = self
                .0
                .send(std::thread::current().name().map(str::to_string));
        }
    }

    #[test]
    fn big_messages_are_dropped_on_the_drop_thread() {
        let (tx, rx) = std::sync::mpsc::channel();
        let queue = drops().expect("the drop thread starts");
        queue
            .try_send(Box::new(Witness(tx)))
            .unwrap_or_else(|_| panic!("the queue takes it"));
        let by = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("dropped within 5 s");
        assert_eq!(by.as_deref(), Some("drop-answers"));
    }
}
