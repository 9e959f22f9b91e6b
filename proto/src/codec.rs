//! The codec of the generated client and server: prost's, except that a big
//! message is dropped on a blocking thread after it is encoded, not on the
//! task that is about to send it.
//!
//! tonic drops each message right after encoding it, before its first byte
//! goes out. A whole kube-proxy nat table (`Firewall`, ~5,700 rules of four
//! strings each) takes milliseconds to free — with the static agent's musl
//! allocator, tens of thousands of `free` calls and hundreds of `munmap`s —
//! which the answer then waited for. Messages under [`DEFER_DROP_BYTES`]
//! encoded are dropped in place, as prost's codec does.

use std::marker::PhantomData;

use prost::Message;
use prost::bytes::BufMut;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::{ProstCodec, ProstDecoder};

/// Encoded size from which a message is dropped off the sending task.
pub const DEFER_DROP_BYTES: usize = 64 * 1024;

/// [`tonic_prost::ProstCodec`] with big messages dropped on a blocking thread.
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
        let big = room.saturating_sub(buf.remaining_mut()) >= DEFER_DROP_BYTES;
        match tokio::runtime::Handle::try_current() {
            // The task is not awaited: it only frees memory.
            Ok(runtime) if big => drop(runtime.spawn_blocking(move || drop(item))),
            _ => drop(item),
        }
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
