//! Weighted least connections: the eligible backend with the fewest exchanges in flight (all
//! workers, as far as this one knows) per unit of weight, counting the one about to be sent.
//!
//! Ties go to the first tied backend at or after a cursor that moves past each pick, so equal
//! backends take turns instead of the lowest index taking every tie.

use super::Candidate;

/// Index of the eligible candidate minimising `(in_flight + in_flight_others + 1) / weight`,
/// or `None` when none has weight > 0. Moves `cursor` to one past the pick.
///
/// One pass over the candidates: O(n).
pub(super) fn select(candidates: &[Candidate], cursor: &mut usize) -> Option<usize> {
    // Wrap before indexing: the candidate list may have shrunk since the last pick.
    let start = if candidates.is_empty() { 0 } else { *cursor % candidates.len() };
    let order = (start..candidates.len()).chain(0..start);
    let mut best: Option<(usize, u128, u128)> = None;
    for index in order {
        let candidate = &candidates[index];
        if candidate.weight == 0 {
            continue;
        }
        let load = u128::from(candidate.load() + 1);
        let weight = u128::from(candidate.weight);
        // load / weight < best_load / best_weight, cross-multiplied to stay exact; strict, so
        // the first tied backend in cursor order keeps the pick.
        if best.is_none_or(|(_, best_load, best_weight)| load * best_weight < best_load * weight) {
            best = Some((index, load, weight));
        }
    }
    let (index, _, _) = best?;
    *cursor = index + 1;
    Some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(weight: u32, in_flight: u32, in_flight_others: u32) -> Candidate {
        Candidate { weight, in_flight, in_flight_others, latency_ewma_ns: 0.0 }
    }

    #[test]
    fn picks_the_least_loaded_per_unit_of_weight() {
        // (candidates, expected pick)
        let table: [(&[Candidate], usize); 6] = [
            (&[candidate(1, 3, 0), candidate(1, 1, 0), candidate(1, 2, 0)], 1),
            // Other workers' exchanges count too.
            (&[candidate(1, 0, 9), candidate(1, 2, 0), candidate(1, 1, 5)], 1),
            // (4 + 1) / 5 = 1 beats (1 + 1) / 1 = 2.
            (&[candidate(1, 1, 0), candidate(5, 4, 0)], 1),
            // At zero load the +1 makes the heavier backend the lighter one.
            (&[candidate(1, 0, 0), candidate(3, 0, 0)], 1),
            // Ineligible backends are skipped however idle.
            (&[candidate(0, 0, 0), candidate(1, 7, 0)], 1),
            (&[candidate(1, u32::MAX, u32::MAX), candidate(u32::MAX, u32::MAX, 0)], 1),
        ];
        for (candidates, expected) in table {
            let mut cursor = 0;
            assert_eq!(select(candidates, &mut cursor), Some(expected), "{candidates:?}");
            assert_eq!(cursor, expected + 1);
        }
    }

    #[test]
    fn ties_take_turns() {
        // Backends 1, 3 and 4 tie; 0 and 2 are busier. Each tied backend gets a third.
        let candidates = [
            candidate(1, 5, 0),
            candidate(1, 2, 0),
            candidate(1, 5, 0),
            candidate(1, 2, 0),
            candidate(1, 2, 0),
        ];
        let mut cursor = 0;
        let picks: Vec<usize> = (0..6).map(|_| select(&candidates, &mut cursor).unwrap()).collect();
        assert_eq!(picks, [1, 3, 4, 1, 3, 4]);
    }

    #[test]
    fn loads_fed_back_stay_level() {
        let mut candidates = [candidate(1, 0, 0), candidate(2, 0, 0), candidate(1, 0, 0)];
        let mut cursor = 0;
        for _ in 0..400 {
            let index = select(&candidates, &mut cursor).unwrap();
            candidates[index].in_flight += 1;
        }
        // Loads end proportional to the weights: 100, 200, 100.
        let loads: Vec<u32> = candidates.iter().map(|candidate| candidate.in_flight).collect();
        assert_eq!(loads, [100, 200, 100]);
    }

    #[test]
    fn nothing_eligible_is_none_and_a_stale_cursor_is_fine() {
        let mut cursor = 99;
        assert_eq!(select(&[], &mut cursor), None);
        assert_eq!(select(&[candidate(0, 0, 0); 3], &mut cursor), None);
        assert_eq!(select(&[candidate(1, 0, 0); 3], &mut cursor), Some(0));
    }
}
