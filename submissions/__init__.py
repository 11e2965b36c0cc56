"""The submission format: spec, validator, packer and upload client. The one definition of what a team hands in."""
