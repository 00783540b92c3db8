//! The CHIMERA engine's gRPC API, `chimera.v1` (`proto/chimera/v1/engine.proto`).

// Generated code: prost keeps a oneof's message inline, so a `Job` in one variant dwarfs a string
// in another; boxing them would change the API for no measurable gain.
#[allow(clippy::large_enum_variant)]
pub mod v1 {
    tonic::include_proto!("chimera.v1");

    /// The encoded `FileDescriptorSet` of `chimera.v1`, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/chimera_v1_descriptor.bin"));
}
