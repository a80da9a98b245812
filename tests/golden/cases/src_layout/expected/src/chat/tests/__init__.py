"""Tests of the chat app; they run offline with a scripted model."""
