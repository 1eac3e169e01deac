//! The brotli encoder's allocator: blocks it frees are kept and handed back, zeroed, when
//! it asks for the same length again. The brotli crate has no reset, so a state is
//! "reset" by freeing its tables into this allocator and building a new state on it
//! ([`super::Coder::reset`]); the new state's tables come from the kept blocks, with no
//! page faults.

use brotli::enc::cluster::HistogramPair;
use brotli::enc::command::Command;
use brotli::enc::entropy_encode::HuffmanTree;
use brotli::enc::histogram::{ContextType, HistogramCommand, HistogramDistance, HistogramLiteral};
use brotli::enc::{
    Allocator, CombiningAllocator, PDF, SliceWrapper, SliceWrapperMut, StaticCommand, ZopfliNode,
    floatX, s16, v8,
};

/// Freed blocks kept per element type; past this many, the oldest goes back to the heap.
const KEPT_BLOCKS_MAX: usize = 16;

/// One allocation of the encoder's.
#[derive(Debug)]
pub struct Block<T>(Box<[T]>);

impl<T> Default for Block<T> {
    fn default() -> Self {
        Self(Box::default())
    }
}

impl<T> SliceWrapper<T> for Block<T> {
    fn slice(&self) -> &[T] {
        &self.0
    }
}

impl<T> SliceWrapperMut<T> for Block<T> {
    fn slice_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

/// Blocks of `T`, kept when freed. Every block handed out holds `T::default()` only, kept
/// or new, so nothing one stream wrote is seen by the next.
#[derive(Debug)]
pub struct KeptBlocks<T> {
    kept: Vec<Block<T>>,
}

impl<T> Default for KeptBlocks<T> {
    fn default() -> Self {
        Self { kept: Vec::new() }
    }
}

impl<T: Clone + Default> Allocator<T> for KeptBlocks<T> {
    type AllocatedMemory = Block<T>;

    fn alloc_cell(&mut self, len: usize) -> Block<T> {
        match self.kept.iter().rposition(|block| block.slice().len() == len) {
            Some(index) if len > 0 => {
                let mut block = self.kept.remove(index);
                block.slice_mut().fill(T::default());
                block
            }
            Some(_) | None => Block(vec![T::default(); len].into_boxed_slice()),
        }
    }

    /// Keeps `block`, dropping the oldest kept one when full: the tables a state frees
    /// last, at its reset, are the large ones the next stream asks for first.
    fn free_cell(&mut self, block: Block<T>) {
        if block.slice().is_empty() {
            return;
        }
        if self.kept.len() >= KEPT_BLOCKS_MAX {
            self.kept.remove(0);
        }
        self.kept.push(block);
    }
}

/// The brotli encoder's allocator: one [`KeptBlocks`] per element type it allocates.
pub type BrAlloc = CombiningAllocator<
    KeptBlocks<u8>,
    KeptBlocks<u16>,
    KeptBlocks<i32>,
    KeptBlocks<u32>,
    KeptBlocks<u64>,
    KeptBlocks<Command>,
    KeptBlocks<floatX>,
    KeptBlocks<v8>,
    KeptBlocks<s16>,
    KeptBlocks<PDF>,
    KeptBlocks<StaticCommand>,
    KeptBlocks<HistogramLiteral>,
    KeptBlocks<HistogramCommand>,
    KeptBlocks<HistogramDistance>,
    KeptBlocks<HistogramPair>,
    KeptBlocks<ContextType>,
    KeptBlocks<HuffmanTree>,
    KeptBlocks<ZopfliNode>,
>;
