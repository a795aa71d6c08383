//! The frame tracker over any bytes, in any chunking: never panics, and its frame count does
//! not depend on how the stream was split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_protocol::FrameTracker;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let mut whole = FrameTracker::new();
    whole.feed(stream);
    let mut split = FrameTracker::new();
    let step = usize::from(cut).max(1);
    for chunk in stream.chunks(step) {
        split.feed(chunk);
    }
    assert_eq!(whole.frames(), split.frames());
    assert_eq!(whole.state(), split.state());
});
