//! Memory freed by a thread that has exited goes back to the system.

#[global_allocator]
static ALLOCATOR: ipintel_alloc::Allocator = ipintel_alloc::Allocator;

/// Resident memory of this process, in KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs is mounted");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS is listed")
}

/// Allocates about `mib` MiB in many small blocks (as a snapshot's strings
/// and tables are), touches them and hands them back to the caller.
fn allocate_small_blocks(mib: usize) -> Vec<Box<[u8]>> {
    let block = 1024;
    (0..mib * 1024 * 1024 / block)
        .map(|i| vec![(i % 251) as u8; block].into_boxed_slice())
        .collect()
}

#[test]
fn memory_freed_after_its_thread_exits_is_returned() {
    ipintel_alloc::return_freed_memory_at_once();
    assert_eq!(ipintel_alloc::purge_delay_ms(), 0);

    let before = resident_kib();
    // Allocated on a thread that then exits, freed on this one: the case of
    // a snapshot built on the reload thread and replaced later.
    let blocks = std::thread::spawn(|| allocate_small_blocks(256))
        .join()
        .expect("the allocating thread ran");
    let grown = resident_kib();
    assert!(
        grown > before + 200 * 1024,
        "the blocks are resident: {before} KiB before, {grown} KiB after"
    );
    drop(blocks);
    // With the option set, the pages go back while they are freed. Without
    // it they would wait for mimalloc's delay (a second by default) and
    // then for the next allocation on their thread, which this one, only
    // sleeping, never makes.
    let mut after = resident_kib();
    for _ in 0..10 {
        if after < before + 64 * 1024 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        after = resident_kib();
    }
    assert!(
        after < before + 64 * 1024,
        "freed memory stayed resident: {before} KiB before, {grown} KiB with the blocks, \
         {after} KiB after freeing them"
    );
}
