// Generates the tfplugin6 and go-plugin gRPC server code. protoc comes from the
// protoc-bin-vendored crate, so building needs no system protoc and no download.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    // SAFETY: build scripts are single-threaded; PROTOC is read by prost-build below.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Ordered maps: GetProviderSchema and GetFunctions encode to the same bytes on every
        // call and in every process.
        .btree_map(".tfplugin6")
        .compile_protos(
            &[
                std::path::PathBuf::from("proto/tfplugin6.proto"),
                std::path::PathBuf::from("proto/go_plugin.proto"),
            ],
            &[std::path::PathBuf::from("proto"), well_known],
        )?;
    Ok(())
}
