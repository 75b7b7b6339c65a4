//! Builds libhearth (the shared library bun:ffi loads) and the Zig test suite.
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    // The packaged builds (scripts/build-native.ts: one per platform and -Dcpu variant) are
    // stripped: a third of the file is debug info a user never reads.
    const strip = b.option(bool, "strip", "Omit debug info from libhearth");

    const lib_mod = b.createModule(.{
        .root_source_file = b.path("zig/root.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .strip = strip,
    });
    const lib = b.addLibrary(.{ .linkage = .dynamic, .name = "hearth", .root_module = lib_mod });
    b.installArtifact(lib);

    const test_mod = b.createModule(.{
        .root_source_file = b.path("zig/root.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    const tests = b.addTest(.{ .root_module = test_mod });
    const run_tests = b.addRunArtifact(tests);
    run_tests.skip_foreign_checks = false;
    // Always run, so scripts/test.sh can count the tests from the summary.
    run_tests.has_side_effects = true;
    const test_step = b.step("test", "Run the Zig unit tests");
    test_step.dependOn(&run_tests.step);

    // The NEON kernels cross-compiled for aarch64-linux and run under qemu-user (`zig build
    // test-aarch64 -fqemu`): once with dotprod (the sdot path) and once on the baseline CPU
    // (NEON without dotprod, the portable vector path). Static musl needs no sysroot.
    const arm_step = b.step("test-aarch64", "Run the Zig unit tests for aarch64-linux under qemu (-fqemu)");
    const arm_cpus = [_]*const std.Target.Cpu.Model{ &std.Target.aarch64.cpu.neoverse_n1, &std.Target.aarch64.cpu.generic };
    for (arm_cpus) |cpu_model| {
        const arm_target = b.resolveTargetQuery(.{
            .cpu_arch = .aarch64,
            .os_tag = .linux,
            .abi = .musl,
            .cpu_model = .{ .explicit = cpu_model },
        });
        const arm_mod = b.createModule(.{
            .root_source_file = b.path("zig/root.zig"),
            .target = arm_target,
            .optimize = optimize,
            .link_libc = true,
        });
        const arm_tests = b.addTest(.{ .root_module = arm_mod, .name = b.fmt("test-aarch64-{s}", .{cpu_model.name}) });
        const run_arm = b.addRunArtifact(arm_tests);
        // Fail instead of skipping when qemu is missing: a test that silently skips cannot fail.
        run_arm.skip_foreign_checks = false;
        arm_step.dependOn(&run_arm.step);
    }
}
