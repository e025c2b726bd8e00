//! Response compression (gzip, br, zstd) negotiated by `Accept-Encoding`, for bodies
//! above a size threshold. Request bodies are decompressed in `input` (gzip only),
//! within `limits.max_decompressed_bytes`.

use axum::http::Response;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};

use crate::limits::LimitsConfig;

/// Whether a response is worth compressing.
#[derive(Clone)]
pub struct Worthwhile {
    enabled: bool,
    size: SizeAbove,
}

impl Predicate for Worthwhile {
    fn should_compress<B: axum::body::HttpBody>(&self, response: &Response<B>) -> bool {
        self.enabled
            && self.size.should_compress(response)
            && NotForContentType::IMAGES.should_compress(response)
            && NotForContentType::GRPC.should_compress(response)
            && NotForContentType::SSE.should_compress(response)
    }
}

pub fn layer(limits: &LimitsConfig) -> CompressionLayer<Worthwhile> {
    CompressionLayer::new().compress_when(Worthwhile {
        enabled: limits.compression,
        size: SizeAbove::new(limits.compression_min_bytes),
    })
}
