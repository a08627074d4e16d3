-- Campaigns were allowed `failed` and `canceled`, and voicemail
-- transcriptions `failed`, which nothing writes. The API reads each status
-- column into the enum its document lists, so a value outside it could not
-- be read; the constraints now hold exactly the values the code writes.
ALTER TABLE campaigns
    DROP CONSTRAINT campaigns_status_check,
    ADD CONSTRAINT campaigns_status_check
        CHECK (status IN ('pending', 'running', 'completed'));
ALTER TABLE voicemails
    DROP CONSTRAINT voicemails_transcription_status_check,
    ADD CONSTRAINT voicemails_transcription_status_check
        CHECK (transcription_status IN ('pending', 'processing', 'completed'));
