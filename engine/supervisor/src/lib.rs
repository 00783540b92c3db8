//! CHIMERA's heads as processes (`../shared/DESIGN.md`, "Process model"): a GPU fault or a panic
//! kills one head, never the front door. [`supervisor`] is the engine's side and [`protocol`]
//! what it and a head say to each other; the head's side is `chimera-head`.

pub mod priority;
pub mod protocol;
pub mod supervisor;

pub use priority::{HEAD_NICENESS, lower_priority};
pub use protocol::{FromHead, KeyText, Outcome, Replica, SealedFile, StatevectorWork, ToHead};
pub use supervisor::{
    AtRest, HeadConfig, HeadEvent, HeadInfo, HeadStatus, Launcher, Supervisor, SupervisorConfig,
    SupervisorError,
};
