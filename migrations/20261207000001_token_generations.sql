-- Token validity by generation, not by comparing clocks: every user has a token generation, drawn
-- from one sequence so that a user deleted and created again never repeats an old one. Access
-- tokens and stream tickets carry the generation they were issued under (claim `gen`) and are
-- refused once it moved (a change of role or password); refresh families carry theirs too.
CREATE SEQUENCE token_generations;
ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT nextval('token_generations');
ALTER TABLE refresh_tokens ADD COLUMN generation BIGINT;
-- Families that were valid keep working; those that predate a change stay refused.
UPDATE refresh_tokens t SET generation = u.token_generation FROM users u
    WHERE u.username = t.username AND t.family_started_at >= u.tokens_valid_since;
UPDATE refresh_tokens SET generation = -1 WHERE generation IS NULL;
ALTER TABLE refresh_tokens ALTER COLUMN generation SET NOT NULL;
ALTER TABLE users DROP COLUMN tokens_valid_since;
