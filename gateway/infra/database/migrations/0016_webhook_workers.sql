-- Delivery workers say they are alive at every claim, so a claim knows how many workers share
-- each endpoint's bound. Without it the first worker to claim an endpoint's slots refilled
-- them as its attempts ended, before a second worker (woken only by its own attempts or its
-- idle wait) could: one worker sent nearly everything while another idled, and running more
-- workers did not spread the work. A claim now takes at most an even share of each bound.
-- Rows of workers unseen for long are deleted by later claims.
CREATE TABLE webhook_workers (
    id       uuid PRIMARY KEY,
    seen_at  timestamptz NOT NULL
);
