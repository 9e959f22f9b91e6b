//! Conntrack via ctnetlink: a zero-allocation decoder (`decode`), the filter
//! and paging rules (`filter`), and the streaming dump (`dump`) that keeps only
//! the page in memory whatever the size of the table.

pub mod decode;
pub mod dump;
pub mod filter;

pub use decode::{ConntrackRecord, Tuple};
pub use filter::{ConntrackFilter, PageToken};
