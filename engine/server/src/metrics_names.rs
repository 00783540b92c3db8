//! The engine's Prometheus metrics (DESIGN.md, "Observability"), named once here.

pub const HEAD_STATUS: &str = "chimera_head_status";
pub const HEAD_RESTARTS: &str = "chimera_head_restarts_total";
pub const HEAD_REBUILDS: &str = "chimera_head_rebuilds_total";
pub const HEAD_REBUILD_SECONDS: &str = "chimera_head_rebuild_seconds";
pub const HEAD_KEY_EPOCH: &str = "chimera_head_key_epoch";
pub const HEAD_KEY_SHARES: &str = "chimera_head_key_shares";
pub const HEAD_RECOVERED_FILES: &str = "chimera_head_recovered_files_total";
pub const JOBS: &str = "chimera_jobs_total";
pub const JOB_SECONDS: &str = "chimera_job_seconds";
pub const QUEUE_DEPTH: &str = "chimera_queue_depth";
pub const SIGNATURE_CHECKS: &str = "chimera_signature_checks_total";
pub const SUBMISSIONS: &str = "chimera_submissions_total";
pub const ACK_SECONDS: &str = "chimera_submit_ack_seconds";
pub const GATE_PASSES: &str = "chimera_statevector_gate_passes_total";
pub const BYTES_MOVED: &str = "chimera_statevector_bytes_moved_total";
pub const RECEIPT_BATCH_SIZE: &str = "chimera_receipt_batch_size";
pub const CONNECTIONS_OPEN: &str = "chimera_connections_open";
pub const CONNECTIONS_MAX: &str = "chimera_connections_max";
pub const CONNECTIONS_SILENT: &str = "chimera_connections_silent_total";
pub const JOBS_PRUNED: &str = "chimera_jobs_pruned_total";
pub const CONNECTIONS_MAX_PER_SOURCE: &str = "chimera_connections_max_per_source";
pub const CONNECTIONS_OVER_SOURCE_LIMIT: &str = "chimera_connections_over_source_limit_total";
/// Kept from the CHIMERA documents' dashboards: requests by RPC.
pub const REQUESTS: &str = "chimera_requests_total";
/// Kept from the CHIMERA documents' dashboards: time a head spent running a job.
pub const EXECUTION_SECONDS: &str = "chimera_execution_time_seconds";

/// Kept from the CHIMERA documents' dashboards: the fraction (0 to 1) of the last sample period
/// in which a kernel ran on the GPU, from NVML.
pub const CUDA_UTILIZATION: &str = "chimera_cuda_utilization";
pub const GPU_MEMORY_USED: &str = "chimera_gpu_memory_used_bytes";
pub const GPU_MEMORY_TOTAL: &str = "chimera_gpu_memory_total_bytes";

/// Histogram buckets, in seconds, for every `_seconds` histogram.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0,
];

/// Buckets for [`RECEIPT_BATCH_SIZE`], up to the signer's largest batch.
pub const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        HEAD_STATUS,
        "1 when the head is up, 0 when starting or down"
    );
    describe_counter!(HEAD_RESTARTS, "heads started again after dying");
    describe_counter!(
        HEAD_REBUILDS,
        "rebuilt heads that have a key: outcome `restored` (their dead head's key from two \
         peers' shares, then rotated) or `new_key` (too few shares; the dead head's sealed \
         state stays closed)"
    );
    describe_histogram!(
        HEAD_REBUILD_SECONDS,
        "seconds from a head's death to its rebuild sealing with a key, by outcome"
    );
    describe_gauge!(HEAD_KEY_EPOCH, "the epoch of the key each head seals with");
    describe_gauge!(
        HEAD_KEY_SHARES,
        "live peers holding a share of the key each head seals with: below 2, a head that died \
         now would come back without its key, and what it sealed would stay closed"
    );
    describe_gauge!(
        CONNECTIONS_OPEN,
        "connections each door (`grpc`, `http`) holds now; at the door's maximum, new clients \
         wait in the listen queue"
    );
    describe_gauge!(
        CONNECTIONS_MAX,
        "connections each door may hold at once (--max-connections)"
    );
    describe_gauge!(
        CONNECTIONS_MAX_PER_SOURCE,
        "connections each door holds at once from one source: an IPv4 address or an IPv6 /64 \
         (--max-connections-per-source)"
    );
    describe_counter!(
        CONNECTIONS_OVER_SOURCE_LIMIT,
        "connections each door closed at once because their source held its most"
    );
    describe_counter!(
        CONNECTIONS_SILENT,
        "clients dropped by each door for sending nothing within --read-timeout"
    );
    describe_counter!(
        HEAD_RECOVERED_FILES,
        "files of a head's sealed state that its rebuild took back from its peers' replicas \
         (lost or damaged in its own directory)"
    );
    describe_counter!(JOBS, "finished jobs by MAML type and outcome");
    describe_counter!(
        JOBS_PRUNED,
        "finished jobs whose document, result and receipt were removed (--keep-finished-days)"
    );
    describe_histogram!(JOB_SECONDS, "seconds from submission to a final state");
    describe_gauge!(QUEUE_DEPTH, "jobs waiting for a head, by role");
    describe_counter!(
        SIGNATURE_CHECKS,
        "admission checks of submitted documents, by result"
    );
    describe_counter!(
        SUBMISSIONS,
        "submissions by outcome: created, existing, refused"
    );
    describe_histogram!(
        ACK_SECONDS,
        "seconds from receiving a submission to answering it"
    );
    describe_histogram!(
        RECEIPT_BATCH_SIZE,
        "receipts signed together under one engine signature"
    );
    describe_counter!(REQUESTS, "gRPC requests by method");
    describe_counter!(
        GATE_PASSES,
        "passes of gates over a whole statevector, by quantum head"
    );
    describe_counter!(
        BYTES_MOVED,
        "bytes the statevector gate passes read and wrote, by quantum head"
    );
    describe_histogram!(EXECUTION_SECONDS, "seconds a head spent running a job");
    describe_gauge!(
        CUDA_UTILIZATION,
        "fraction of the last second in which a kernel ran on the GPU, by device"
    );
    describe_gauge!(GPU_MEMORY_USED, "GPU memory in use, bytes, by device");
    describe_gauge!(GPU_MEMORY_TOTAL, "GPU memory installed, bytes, by device");
}
