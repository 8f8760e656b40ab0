-- A delivery row is written twice on the hot path: inserted by fan-out, updated by its attempt.
-- Fan-out inserts deliveries in batches of hundreds, so with 000002's fillfactor 80 a page held
-- ~40 fresh rows and room for only ~10 new versions: most attempts' updates could not stay on the
-- page (not HOT) and re-inserted the row into all three indexes. With half of each page free,
-- every first attempt's update is a HOT update (bench, 60,000 deliveries: 35 % → 100 % HOT).
-- Pages written from now on use it; existing ones keep theirs until rewritten.
alter table webhooks.deliveries set (fillfactor = 50);
