//! Every metric name Osprey exports, once.

// Requests (the first four are striped families rendered by hand).
pub const REQUESTS: &str = "osprey_requests_total";
pub const REQUEST_DURATION: &str = "osprey_request_duration_seconds";
pub const STAGE_DURATION: &str = "osprey_stage_duration_seconds";
pub const EMBEDDED_ITEMS: &str = "osprey_embedded_items_total";
pub const REQUESTS_IN_FLIGHT: &str = "osprey_requests_in_flight";
pub const REJECTED: &str = "osprey_rejected_total";
pub const AUTH_FAILURES: &str = "osprey_auth_failures_total";

// Engine: queue, batches, inference.
pub const CANCELLED_ITEMS: &str = "osprey_cancelled_items_total";
pub const COALESCED_ITEMS: &str = "osprey_coalesced_items_total";
pub const QUEUE_TOKENS: &str = "osprey_queue_tokens";
pub const QUEUE_CAPACITY_TOKENS: &str = "osprey_queue_capacity_tokens";
pub const BATCH_SIZE: &str = "osprey_batch_size";
pub const BATCH_TOKENS: &str = "osprey_batch_tokens";
pub const BATCH_PADDING_RATIO: &str = "osprey_batch_padding_ratio";
pub const BATCH_PADDED_TOKENS: &str = "osprey_batch_padded_tokens_total";
pub const BATCH_REAL_TOKENS: &str = "osprey_batch_real_tokens_total";
pub const BATCH_DURATION: &str = "osprey_batch_duration_seconds";
pub const INFERENCE: &str = "osprey_inference_total";
pub const MODEL_INFO: &str = "osprey_model_info";

// Cache tiers (lookup durations are a striped histogram per tier, rendered by hand).
pub const CACHE_REQUESTS: &str = "osprey_cache_requests_total";
pub const CACHE_CORRUPT: &str = "osprey_cache_corrupt_total";
pub const CACHE_WRITES: &str = "osprey_cache_writes_total";
pub const CACHE_EVICTIONS: &str = "osprey_cache_evictions_total";
pub const CACHE_ENTRIES: &str = "osprey_cache_entries";
pub const CACHE_BYTES: &str = "osprey_cache_bytes";
pub const CACHE_LOOKUP_DURATION: &str = "osprey_cache_lookup_duration_seconds";

// The process.
pub const PROCESS_CPU_SECONDS: &str = "osprey_process_cpu_seconds_total";
pub const PROCESS_RESIDENT_MEMORY: &str = "osprey_process_resident_memory_bytes";
pub const PROCESS_THREADS: &str = "osprey_process_threads";
pub const PROCESS_OPEN_FDS: &str = "osprey_process_open_fds";
pub const PROCESS_MAX_FDS: &str = "osprey_process_max_fds";
pub const PROCESS_UPTIME: &str = "osprey_process_uptime_seconds";

// SLOs and alerts.
pub const SLO_OBJECTIVE: &str = "osprey_slo_objective";
pub const SLO_COMPLIANCE: &str = "osprey_slo_compliance";
pub const SLO_BURN_RATE: &str = "osprey_slo_burn_rate";
pub const SLO_ERROR_BUDGET_REMAINING: &str = "osprey_slo_error_budget_remaining";
pub const ALERTS_ACTIVE: &str = "osprey_alerts_active";
pub const ALERT_DELIVERIES: &str = "osprey_alert_deliveries_total";
pub const COLLECTION_SEARCH_DURATION: &str = "osprey_collection_search_duration_seconds";
pub const COLLECTION_POINTS: &str = "osprey_collection_points";
pub const COLLECTION_UNINDEXED_POINTS: &str = "osprey_collection_unindexed_points";

// Self-tuning and self-healing.
pub const SELF_HEAL_ACTIONS: &str = "osprey_self_heal_actions_total";
pub const REPLICAS: &str = "osprey_replicas";
