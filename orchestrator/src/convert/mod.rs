//! Hands a Compose project to the distributed engines that already exist, translated into
//! what they run: a stack that outgrows one machine keeps its file. Pure functions of the
//! loaded [`crate::compose::Project`]: no daemon, no network, testable without root.

pub mod kubernetes;
pub mod swarm;
