//! CHIMERA's heads as processes (`../shared/DESIGN.md`, "Process model"): a GPU fault or a panic
//! kills one head, never the front door. [`supervisor`] is the engine's side, [`worker`] the head's,
//! [`protocol`] what they say to each other.

mod files;
pub mod head_keys;
pub mod priority;
pub mod protocol;
mod replicas;
pub mod supervisor;
pub mod worker;

pub use head_keys::{HeadKeys, StateError};
pub use priority::{HEAD_NICENESS, lower_priority};
pub use protocol::{FromHead, Outcome, Replica, SealedFile, StatevectorWork, ToHead};
pub use supervisor::{
    HeadConfig, HeadEvent, HeadInfo, HeadStatus, Launcher, Supervisor, SupervisorConfig,
    SupervisorError,
};
pub use worker::{Executor, HEARTBEAT_INTERVAL, JobOrder, JobReport, WorkerError};
