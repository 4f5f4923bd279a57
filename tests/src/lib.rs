//! The harness of berth's end-to-end tests, which drive the real `berth` binary (as root):
//! finding a freshly built binary ([`berth_bin`]), a simulated host with its own berth
//! instance in a network namespace ([`host::Host`]), a throwaway instance in the host's
//! namespace for single containers ([`container_util::Env`]), the docker CLI pointed at an
//! instance ([`docker::Docker`]), and the leak checks both run
//! so a test proves that berth left nothing behind.

pub mod binary;
pub mod container_util;
pub mod docker;
pub mod host;
pub mod neighbour;
pub mod registry;

pub use binary::berth_bin;
